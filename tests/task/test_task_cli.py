from __future__ import annotations

import json
import re
import sys
import types

import pytest

from equisweep.task import TaskConfig

ARGS = ["--trajectories", "5", "--val-trajectories", "2", "--test-trajectories", "1",
        "--frames", "12", "--bodies", "2", "4", "--shard-size", "3", "--quiet"]


def test_generate_then_info(cli, tmp_path):
    rc, out, err = cli("generate", *ARGS, "--out", str(tmp_path), "--workers", "1")
    assert rc == 0, err
    cfg = TaskConfig(trajectories=5, val_trajectories=2, test_trajectories=1, frames=12,
                     bodies=(2, 4), shard_size=3)
    path = tmp_path / cfg.key()
    assert (path / "manifest.json").exists()
    assert str(path) in out and "train     5 trajectories in 2 shards" in out
    assert json.loads((path / "manifest.json").read_text())["config"] == cfg.generation_dict()
    for target in (path, tmp_path):  # the dataset folder itself, or the cache holding it
        rc, out, err = cli("info", str(target), "--verify")
        assert rc == 0, err
        assert f"key       {cfg.key()}" in out and "checksums verified" in out
        lo, hi = map(int, re.search(r"train .* bodies/scene (\d+)-(\d+)", out).groups())
        assert 2 <= lo <= hi <= 4
    rc, again, _ = cli("generate", *ARGS, "--out", str(tmp_path))  # cached: no work
    assert rc == 0 and str(path) in again


@pytest.mark.parametrize("argv, needle", [
    (["--trajectories", "-5"], "--trajectories"),
    (["--bodies", "6", "3"], "--bodies: minimum 6 is greater than maximum 3"),
    (["--shapes", "box", "sphere"], "unknown shape kind 'sphere'"),
    (["--vertices", "2"], "--vertices"),
    (["--frames", "2"], "--frames"),
    (["--workers", "0"], "--workers"),
])
def test_bad_generate_arguments(cli, tmp_path, argv, needle):
    rc, out, err = cli("generate", "--out", str(tmp_path / "cache"), "--quiet", *argv)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("equisweep data: error:"), err
    assert needle in lines[0]
    assert not (tmp_path / "cache").exists()  # nothing half-written


def test_info_on_things_that_are_not_datasets(cli, tmp_path):
    for target, needle in ((tmp_path / "missing", "no such folder"),
                           (tmp_path, "not an equisweep dataset")):
        rc, _, err = cli("info", str(target))
        assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1
    (tmp_path / "train-00000.npz").write_bytes(b"x")
    rc, _, err = cli("info", str(tmp_path))
    assert rc == 2 and "incomplete" in err


def test_info_reports_a_corrupt_shard(cli, small_dataset, tmp_path):
    import shutil

    path = tmp_path / small_dataset.name
    shutil.copytree(small_dataset, path)
    shard = path / "val-00000.npz"
    data = bytearray(shard.read_bytes())
    data[200] ^= 0x40
    shard.write_bytes(bytes(data))
    assert cli("info", str(path))[0] == 0  # without --verify only the manifest is read
    rc, _, err = cli("info", str(path), "--verify")
    assert rc == 2 and "val-00000.npz: shard corrupt" in err


class _Recorder:
    def __init__(self):
        self.jobs = []

    def map(self, fn, iterable):
        for job in iterable:
            self.jobs.append(job)
            yield fn(job)


def _fake_ray_map(monkeypatch, ray_executor):
    module = types.ModuleType("equisweep.sweep.ray_map")
    module.ray_executor = ray_executor
    monkeypatch.setitem(sys.modules, "equisweep.sweep.ray_map", module)


def test_address_hands_shards_to_the_ray_executor(cli, monkeypatch, tmp_path):
    recorder, seen = _Recorder(), []
    _fake_ray_map(monkeypatch, lambda address: seen.append(address) or recorder)
    rc, _, err = cli("generate", *ARGS, "--out", str(tmp_path), "--address", "ray://head:10001")
    assert rc == 0, err
    assert seen == ["ray://head:10001"] and len(recorder.jobs) == 4
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert cli("generate", *ARGS, "--out", str(tmp_path))[0] == 0
    assert seen == ["ray://head:10001"]  # a finished dataset does not even join the cluster
    shard = next(tmp_path.glob("*/val-00000.npz"))
    shard.write_bytes(shard.read_bytes()[:-1] + b"?")
    assert cli("generate", *ARGS, "--out", str(tmp_path))[0] == 0  # repair via $RAY_ADDRESS
    assert seen == ["ray://head:10001", "auto"] and len(recorder.jobs) == 5


def test_unreachable_address_is_a_user_error(cli, monkeypatch, tmp_path):
    def refuse(address):
        raise ConnectionError(f"could not reach {address}")

    _fake_ray_map(monkeypatch, refuse)
    rc, _, err = cli("generate", *ARGS, "--out", str(tmp_path / "c"), "--address", "nowhere")
    assert rc == 2 and "--address: cannot join the Ray cluster at 'nowhere'" in err
    assert not (tmp_path / "c").exists()


def test_task_cli_alone_refuses_address_without_an_executor(tmp_path):
    """task/ knows no Ray: the cluster executor is handed in (by equisweep.sweep.cli_data)."""
    import argparse

    from equisweep.errors import UserError
    from equisweep.task import cli as task_cli

    parser = argparse.ArgumentParser()
    task_cli.add_arguments(parser)
    args = parser.parse_args(["generate", *ARGS, "--out", str(tmp_path / "c"),
                              "--address", "ray://head:10001"])
    with pytest.raises(UserError, match="--address"):
        task_cli.run(args)
    assert not (tmp_path / "c").exists()
    recorder = _Recorder()
    assert task_cli.run(args, executor_for=lambda address: recorder) == 0
    assert len(recorder.jobs) == 4
