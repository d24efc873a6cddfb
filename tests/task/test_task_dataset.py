from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from task_helpers import shard_poses

from equisweep.errors import UserError
from equisweep.task import RigidBodyDataset, TaskConfig, collate
from equisweep.task.geometry import world_vertices


def test_sample_matches_poses_in_the_shard(small_dataset):
    ds = RigidBodyDataset(small_dataset, delta=3)
    for i, (local, body, pos, rot) in enumerate(shard_poses(small_dataset)):
        t = 5
        s = ds.sample(i, t)
        assert set(s) == {"x0", "x1", "c0", "c1", "y", "body", "floor_point", "up"}
        assert all(s[k].dtype == np.float32 for k in ("x0", "x1", "c0", "c1", "y"))
        x = world_vertices(local, body, pos.transpose(1, 0, 2), rot.transpose(1, 0, 2, 3))
        np.testing.assert_allclose(s["x0"], x[t], atol=1e-5)
        np.testing.assert_allclose(s["x1"], x[t + 1], atol=1e-5)
        np.testing.assert_allclose(s["y"], x[t + 4], atol=1e-5)
        np.testing.assert_allclose(s["c1"], pos[body, t + 1], atol=1e-6)
        np.testing.assert_array_equal(s["body"], body)
        # c is each body's centre of mass, inside the hull of its vertices.
        for b in range(body.max() + 1):
            pts = s["x0"][body == b]
            assert np.all(s["c0"][body == b] >= pts.min(0) - 1e-6)
            assert np.all(s["c0"][body == b] <= pts.max(0) + 1e-6)
    np.testing.assert_array_equal(s["up"], [0, 0, 1])
    np.testing.assert_array_equal(s["floor_point"], [0, 0, 0])


def test_windows_are_seeded_by_seed_epoch_and_index(small_dataset):
    a = RigidBodyDataset(small_dataset, seed=1)
    b = RigidBodyDataset(small_dataset, seed=1)
    starts = [a.window_start(i) for i in range(len(a))]
    assert starts == [b.window_start(i) for i in range(len(b))]
    assert all(0 <= t < a.windows == a.frames - 2 for t in starts)
    np.testing.assert_array_equal(a[2]["y"], b[2]["y"])
    epochs = {tuple(a.window_start(i, epoch=e) for i in range(len(a))) for e in range(5)}
    assert len(epochs) > 1
    a.set_epoch(3)
    assert a.window_start(0) == b.window_start(0, epoch=3)
    many = [RigidBodyDataset(small_dataset, seed=s).window_start(0) for s in range(60)]
    assert len(set(many)) > a.windows // 2  # spread over the trajectory, not stuck


def test_limit_takes_the_first_trajectories(small_dataset):
    full = RigidBodyDataset(small_dataset)
    part = RigidBodyDataset(small_dataset, limit=5)  # cuts inside the second shard
    assert len(full) == 6 and len(part) == 5
    for i in range(5):
        np.testing.assert_array_equal(part.sample(i, 2)["x1"], full.sample(i, 2)["x1"])
    assert len(RigidBodyDataset(small_dataset, "test")) == 2
    with pytest.raises(UserError, match="train_trajectories"):
        RigidBodyDataset(small_dataset, limit=7)
    with pytest.raises(UserError, match="split"):
        RigidBodyDataset(small_dataset, split="dev")
    with pytest.raises(UserError, match="task.delta"):
        RigidBodyDataset(small_dataset, delta=23)
    with pytest.raises(IndexError):
        full[6]


def test_from_config(small_cfg, small_dataset):
    ds = RigidBodyDataset.from_config(small_cfg.replace(delta=2), "val",
                                      cache_dir=small_dataset.parent)
    assert len(ds) == 2 and ds.delta == 2


def test_collate_pads_with_a_mask(small_dataset):
    ds = RigidBodyDataset(small_dataset)
    samples = [ds[i] for i in range(len(ds))]
    batch = collate(samples)
    lengths = [len(s["body"]) for s in samples]
    n, v = len(samples), max(lengths)
    assert min(lengths) < v  # the fixture has scenes of different sizes
    for key in ("x0", "x1", "c0", "c1", "y"):
        assert batch[key].shape == (n, v, 3) and batch[key].dtype == torch.float32
    assert batch["floor_point"].shape == batch["up"].shape == (n, 3)
    assert batch["body"].dtype == torch.long and batch["mask"].dtype == torch.bool
    for b, (s, length) in enumerate(zip(samples, lengths)):
        assert batch["mask"][b].sum() == length and batch["mask"][b, :length].all()
        assert (batch["body"][b, length:] == -1).all()
        assert (batch["x0"][b, length:] == 0).all()
        np.testing.assert_array_equal(batch["y"][b, :length].numpy(), s["y"])


@settings(max_examples=30, deadline=None)
@given(draws=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 10 ** 6)),
                      min_size=1, max_size=12),
       delta=st.sampled_from([1, 2, 5]))
def test_batch_equals_collated_samples(small_dataset, draws, delta):
    """The whole-batch gather is exactly collate() of the samples, bit for bit."""
    ds = RigidBodyDataset(small_dataset, delta=delta)
    idx = [i % len(ds) for i, _ in draws]
    starts = [s % ds.windows for _, s in draws]
    want = collate([ds.sample(i, s) for i, s in zip(idx, starts)])
    got = ds.batch(idx, starts)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), key


def test_works_with_a_dataloader(small_dataset):
    loader = torch.utils.data.DataLoader(RigidBodyDataset(small_dataset), batch_size=4,
                                         shuffle=True, collate_fn=collate)
    sizes = [batch["x0"].shape[0] for batch in loader]
    assert sorted(sizes) == [2, 4]


def test_padded_batch_of_64_is_fast(tmp_path):
    from equisweep.task import ensure_dataset

    cfg = TaskConfig(trajectories=64, val_trajectories=0, test_trajectories=0, frames=16,
                     bodies=(8, 10))
    ds = RigidBodyDataset(ensure_dataset(cfg, cache_dir=tmp_path, progress=False))
    times = []
    for _ in range(15):
        start = time.perf_counter()
        collate([ds[i] for i in range(64)])
        times.append(time.perf_counter() - start)
    # Target 5 ms (bench/task); the bound leaves room for a loaded CI machine.
    assert np.median(times) < 0.025
