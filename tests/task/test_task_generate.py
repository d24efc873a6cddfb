from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from equisweep.errors import UserError
from equisweep.task import RigidBodyDataset, TaskConfig, ensure_dataset
from equisweep.task.generate import MANIFEST, shard_plan


def _files(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


class CountingExecutor:
    """A concurrent.futures-style `map` that records the jobs it ran, optionally failing."""

    def __init__(self, fail_after=None):
        self.jobs, self.fail_after = [], fail_after

    def map(self, fn, iterable):
        for job in iterable:
            if self.fail_after is not None and len(self.jobs) >= self.fail_after:
                raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-run
            self.jobs.append(job)
            yield fn(job)


def test_byte_identical_for_any_worker_count(small_cfg, small_dataset, tmp_path):
    two = ensure_dataset(small_cfg, cache_dir=tmp_path, workers=2, progress=False)
    assert two.name == small_dataset.name == small_cfg.key()
    assert _files(two) == _files(small_dataset)
    manifest = json.loads((two / MANIFEST).read_text())
    assert [len(s["shards"]) for s in manifest["splits"].values()] == [2, 1, 1]


def test_layout_follows_the_config(small_cfg, small_dataset):
    names = sorted(p.name for p in small_dataset.iterdir())
    assert names == [MANIFEST, "test-00000.npz", "train-00000.npz", "train-00001.npz",
                     "val-00000.npz"]
    assert [(s, i, a, n) for s, i, a, n in shard_plan(small_cfg)] == [
        ("train", 0, 0, 4), ("train", 1, 4, 2), ("val", 0, 0, 2), ("test", 0, 0, 2)]
    manifest = json.loads((small_dataset / MANIFEST).read_text())
    assert manifest["config"] == small_cfg.generation_dict()
    for split in manifest["splits"].values():
        for entry in split["shards"]:
            assert small_cfg.bodies[0] <= entry["bodies_min"] <= entry["bodies_max"] \
                <= small_cfg.bodies[1]


def test_splits_are_disjoint_and_pools_nest(small_cfg, small_dataset, tmp_path):
    train = RigidBodyDataset(small_dataset, "train")
    val = RigidBodyDataset(small_dataset, "val")
    starts = {tuple(np.round(ds.sample(i, 0)["x0"][0], 5)) for ds in (train, val)
              for i in range(len(ds))}
    assert len(starts) == len(train) + len(val)
    # A bigger pool (other shard size too) begins with the same trajectories.
    bigger = small_cfg.replace(trajectories=9, shard_size=5)
    path = ensure_dataset(bigger, cache_dir=tmp_path, workers=1, progress=False)
    big = RigidBodyDataset(path, "train")
    for i in range(len(train)):
        np.testing.assert_array_equal(big.sample(i, 3)["y"], train.sample(i, 3)["y"])


def test_second_call_is_a_cache_hit(small_cfg, small_dataset):
    runner = CountingExecutor()
    assert ensure_dataset(small_cfg, cache_dir=small_dataset.parent, executor=runner,
                          progress=False) == small_dataset
    assert runner.jobs == []


def test_interrupted_generation_leaves_no_dataset_and_a_rerun_finishes_it(
        small_cfg, small_dataset, tmp_path):
    with pytest.raises(KeyboardInterrupt):
        ensure_dataset(small_cfg, cache_dir=tmp_path, executor=CountingExecutor(fail_after=2),
                       progress=False)
    path = tmp_path / small_cfg.key()
    assert sorted(p.name for p in path.iterdir()) == ["train-00000.npz", "train-00001.npz"]
    with pytest.raises(UserError, match="incomplete"):
        RigidBodyDataset(path)
    rerun = CountingExecutor()
    assert ensure_dataset(small_cfg, cache_dir=tmp_path, executor=rerun,
                          progress=False) == path
    assert [job[1:3] for job in rerun.jobs] == [("val", 0), ("test", 0)]  # shards reused
    assert _files(path) == _files(small_dataset)


def test_damaged_partial_shard_is_remade(small_cfg, small_dataset, tmp_path):
    path = tmp_path / small_cfg.key()
    path.mkdir()
    shutil.copy(small_dataset / "train-00000.npz", path)
    data = bytearray((path / "train-00000.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / "train-00000.npz").write_bytes(bytes(data))
    (path / "train-00001.npz").write_bytes(b"not a shard")
    runner = CountingExecutor()
    ensure_dataset(small_cfg, cache_dir=tmp_path, executor=runner, progress=False)
    assert len(runner.jobs) == 4
    assert _files(path) == _files(small_dataset)


def test_missing_or_corrupt_shard_is_reported_then_repaired(small_cfg, small_dataset,
                                                            tmp_path):
    path = tmp_path / small_cfg.key()
    shutil.copytree(small_dataset, path)
    shard = path / "train-00001.npz"
    data = bytearray(shard.read_bytes())
    data[-100] ^= 0x01  # same size: only the checksum can tell
    shard.write_bytes(bytes(data))
    with pytest.raises(UserError, match=r"train-00001\.npz: shard corrupt"):
        RigidBodyDataset(path)
    RigidBodyDataset(path, limit=4)  # the intact first shard alone still loads
    # A plain call trusts sizes; verify=True re-hashes and remakes the damaged shard.
    ensure_dataset(small_cfg, cache_dir=tmp_path, workers=1, progress=False, verify=True)
    assert _files(path) == _files(small_dataset)
    shard.unlink()
    with pytest.raises(UserError, match=r"train-00001\.npz: shard missing"):
        RigidBodyDataset(path)
    ensure_dataset(small_cfg, cache_dir=tmp_path, workers=1, progress=False)
    assert _files(path) == _files(small_dataset)


def test_bad_input_writes_nothing(tmp_path):
    with pytest.raises(UserError, match="^task.bodies:"):
        ensure_dataset(TaskConfig(bodies=(4, 2)), cache_dir=tmp_path / "c", progress=False)
    with pytest.raises(UserError, match="^workers:"):
        ensure_dataset(TaskConfig(trajectories=1), cache_dir=tmp_path / "c", workers=0)
    assert not (tmp_path / "c").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="is a file"):
        ensure_dataset(TaskConfig(trajectories=1), cache_dir=blocker, progress=False)


def test_not_a_dataset(tmp_path):
    with pytest.raises(UserError, match="not an equisweep dataset"):
        RigidBodyDataset(tmp_path)
    with pytest.raises(UserError, match="no such dataset folder"):
        RigidBodyDataset(tmp_path / "nope")
    (tmp_path / MANIFEST).write_text("{not json")
    with pytest.raises(UserError, match="damaged manifest"):
        RigidBodyDataset(tmp_path)


def test_concurrent_callers_generate_once(small_cfg, small_dataset, tmp_path):
    import os
    import threading
    import time

    runners = [CountingExecutor(), CountingExecutor()]
    stale = tmp_path / small_cfg.key() / ".train-00000.npz.1.dead.tmp"
    stale.parent.mkdir()
    stale.write_bytes(b"left by a killed writer")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    threads = [threading.Thread(target=ensure_dataset, args=(small_cfg,),
                                kwargs=dict(cache_dir=tmp_path, executor=r, progress=False))
               for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(len(r.jobs) for r in runners) == [0, 4]  # the second waited, then reused
    assert _files(tmp_path / small_cfg.key()) == _files(small_dataset)


def test_empty_splits(tmp_path):
    cfg = TaskConfig(trajectories=2, val_trajectories=0, test_trajectories=0, frames=8)
    path = ensure_dataset(cfg, cache_dir=tmp_path, workers=1, progress=False)
    val = RigidBodyDataset(path, "val")
    assert len(val) == 0 and len(RigidBodyDataset(path, "train")) == 2
