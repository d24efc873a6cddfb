"""Fixed evaluation windows, the clustered standard error, and the zero-parameter baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from equisweep.task import RigidBodyDataset, TaskConfig, ensure_dataset
from equisweep.task.baselines import BASELINES, baseline_rows
from equisweep.task.evaluation import (
    TEST_STRIDE,
    Estimate,
    clustered_mean,
    eval_windows,
    per_window_losses,
    val_trajectories_for,
    window_set,
)
from equisweep.task.generate import load_manifest
from tests.task.task_helpers import shard_poses

EVAL_CFG = dict(trajectories=2, val_trajectories=10, test_trajectories=6, shard_size=4,
                frames=24, bodies=(2, 4), vertices=8)


@pytest.fixture(scope="module")
def eval_dataset(tmp_path_factory):
    return ensure_dataset(TaskConfig(**EVAL_CFG), cache_dir=tmp_path_factory.mktemp("eval"),
                          workers=1, progress=False)


# ---- the clustered standard error ----------------------------------------------------------

def _lognormal_clusters(rng, reps, g, m, s_a, s_b):
    """`reps` data sets of g clusters × m windows: l = exp(a_g + b_gi), a ~ N(0, s_a²) shared
    by a cluster, b ~ N(0, s_b²) per window — clustered and heavy-tailed."""
    a = rng.normal(0.0, s_a, size=(reps, g, 1))
    b = rng.normal(0.0, s_b, size=(reps, g, m))
    return np.exp(a + b)


def _true_se(g, m, s_a, s_b):
    """Exact SE of the mean of the model above: Var(cluster mean) / g, in closed form."""
    var_between = math.exp(s_b ** 2) * (math.exp(s_a ** 2) - 1) * math.exp(s_a ** 2)
    var_within = math.exp(2 * s_a ** 2) * (math.exp(s_b ** 2) - 1) * math.exp(s_b ** 2) / m
    return math.sqrt((var_between + var_within) / g)


@settings(max_examples=12, deadline=None, derandomize=True)
@given(g=st.integers(20, 60), m=st.integers(2, 30), s_a=st.floats(0.2, 0.9),
       s_b=st.floats(0.2, 1.0), seed=st.integers(0, 2**32 - 1))
def test_clustered_se_recovers_the_true_standard_error(g, m, s_a, s_b, seed):
    rng = np.random.default_rng(seed)
    reps = 400
    data = _lognormal_clusters(rng, reps, g, m, s_a, s_b)
    clusters = np.repeat(np.arange(g), m)
    ones = np.ones(g * m)
    est = [clustered_mean(d.ravel(), ones, clusters) for d in data]
    true = _true_se(g, m, s_a, s_b)
    rms_se = math.sqrt(np.mean([e.se ** 2 for e in est]))
    # The estimated variance is unbiased up to O(1/g); 400 replications pin its mean to a
    # few per cent even for these tails.
    assert rms_se == pytest.approx(true, rel=0.15)
    # And it describes the estimator's actual spread across data sets.
    spread = np.std([e.loss for e in est], ddof=1)
    assert rms_se == pytest.approx(spread, rel=0.2)


@settings(max_examples=8, deadline=None, derandomize=True)
@given(g=st.integers(25, 60), seed=st.integers(0, 2**32 - 1))
def test_clustered_se_with_unequal_weights_matches_the_spread_of_the_weighted_mean(g, seed):
    """Token-weighted windows of clusters of unequal size (heavy-tailed, correlated)."""
    rng = np.random.default_rng(seed)
    reps, losses_, se2 = 600, [], []
    for _ in range(reps):
        sizes = rng.integers(1, 25, size=g)
        a = np.repeat(rng.normal(0, 0.7, size=g), sizes)
        l = np.exp(a + rng.normal(0, 0.8, size=a.size))
        w = rng.integers(8, 80, size=a.size).astype(float)
        e = clustered_mean(l, w, np.repeat(np.arange(g), sizes))
        losses_.append(e.loss)
        se2.append(e.se ** 2)
    assert math.sqrt(np.mean(se2)) == pytest.approx(np.std(losses_, ddof=1), rel=0.15)


def test_iid_standard_error_would_understate_clustered_noise():
    """Why clustering matters: with strongly correlated windows the naive SE is far too small."""
    rng = np.random.default_rng(0)
    data = _lognormal_clusters(rng, 1, 40, 30, 0.9, 0.2)[0].ravel()
    est = clustered_mean(data, np.ones_like(data), np.repeat(np.arange(40), 30))
    naive = data.std(ddof=1) / math.sqrt(data.size)
    assert est.se > 3 * naive
    assert est.se == pytest.approx(_true_se(40, 30, 0.9, 0.2), rel=0.5)


def test_clustered_mean_is_the_token_weighted_mean():
    l, w = np.array([1.0, 2.0, 4.0]), np.array([1.0, 1.0, 2.0])
    e = clustered_mean(l, w, np.array([0, 0, 1]))
    assert e.loss == pytest.approx(11.0 / 4.0)
    assert (e.windows, e.trajectories) == (3, 2)
    single = clustered_mean(l, w, np.zeros(3, dtype=int))
    assert math.isnan(single.se)
    with pytest.raises(ValueError):
        clustered_mean(l, w[:2], np.zeros(3))


@pytest.mark.parametrize("rse, k_all, expected", [
    (0.05, 40, 40), (0.025, 40, 10), (0.01, 40, 8), (0.2, 40, 40), (0.04, 25, 16),
])
def test_val_size_from_the_measured_relative_error(rse, k_all, expected):
    est = Estimate(loss=1.0, se=rse, windows=k_all * 10, trajectories=k_all)
    assert val_trajectories_for(est, tail_factor=1.0) == expected
    # A model's errors are heavier-tailed than the baseline's: more trajectories, never fewer.
    assert expected <= val_trajectories_for(est) <= k_all


# ---- fixed windows ----------------------------------------------------------------------

def test_windows_are_fixed_per_dataset_not_per_trial(eval_dataset):
    a = RigidBodyDataset(eval_dataset, split="test", seed=0, delta=2)
    b = RigidBodyDataset(eval_dataset, split="test", seed=123, delta=2)
    wa, wb = eval_windows(a), eval_windows(b)
    assert np.array_equal(wa.trajectory, wb.trajectory)
    assert np.array_equal(wa.start, wb.start)
    # Test: every TEST_STRIDE-th window of every trajectory, the phase rotating with the
    # trajectory, so every window position is kept equally often.
    assert wa.trajectories == len(a)
    for t in range(len(a)):
        starts = wa.start[wa.trajectory == t]
        assert starts.tolist() == list(range(t % TEST_STRIDE, a.windows, TEST_STRIDE))
    if len(a) >= TEST_STRIDE:
        kept = np.bincount(wa.start, minlength=a.windows)
        assert kept.min() >= 1
    va = eval_windows(RigidBodyDataset(eval_dataset, split="val", seed=0, delta=2))
    vb = eval_windows(RigidBodyDataset(eval_dataset, split="val", seed=9, delta=2))
    assert np.array_equal(va.trajectory, vb.trajectory) and np.array_equal(va.start, vb.start)
    assert 0 < va.trajectories <= 10


def test_window_set_stride_and_limit(eval_dataset):
    ds = RigidBodyDataset(eval_dataset, split="val", delta=3)
    w = window_set(ds, stride=4, trajectories=3)
    assert w.trajectories == 3
    assert set(w.start.tolist()) == set(range(0, ds.windows, 4))
    with pytest.raises(ValueError):
        window_set(ds, stride=0)


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_losses_come_back_in_set_order_from_length_sorted_batches(eval_dataset, batch_size):
    from equisweep.task.baselines import constant_velocity

    ds = RigidBodyDataset(eval_dataset, split="val", delta=2)
    w = window_set(ds, stride=3, rotate=True)
    tokens = ds.scene_tokens()[w.trajectory]
    padded = 0
    for batch, pos in w.batches(ds, batch_size):
        # A batch pads to its largest scene, and batches run from small scenes to large.
        assert batch["x0"].shape[1] == tokens[pos].max() and padded <= tokens[pos].min()
        padded = batch["x0"].shape[1]
    loss, n, traj = per_window_losses(lambda b: constant_velocity(b, 2), w, ds, batch_size)
    one = [per_window_losses(lambda b: constant_velocity(b, 2),
                             window_set(ds, 1, trajectories=t + 1), ds, 1)[0][
        t * ds.windows + s] for t, s in zip(w.trajectory, w.start)]
    np.testing.assert_allclose(loss, one, rtol=1e-6)
    assert np.array_equal(traj, w.trajectory) and np.array_equal(n, tokens)


# ---- baselines, against an independent computation on the same windows ---------------------

def _independent_baselines(path, split, delta, starts_of):
    """Per-window losses computed from the shard files with plain numpy loops."""
    manifest = load_manifest(path)
    dt, g = manifest["frame_dt"], manifest["config"]["gravity"]
    n_shards = len(manifest["splits"][split]["shards"])
    trajs = [t for s in range(n_shards) for t in shard_poses(path, split, s)]
    per = {name: [] for name in BASELINES}
    for ti, (local, body, pos, rot) in enumerate(trajs):
        # Vertex v at frame f: its body's centre plus the rotated body-frame offset.
        verts = np.stack([pos[body[v]] + rot[body[v]] @ local[v] for v in range(len(body))],
                         axis=1)  # (F, V, 3)
        for t in starts_of(ti):
            x0, x1, y = verts[t], verts[t + 1], verts[t + 1 + delta]
            cv = x1 + delta * (x1 - x0)
            ball = cv.copy()
            drop_free = 0.5 * g * dt * dt * delta * (delta + 1)
            for b in np.unique(body):
                sel = body == b
                drop = min(drop_free, max(0.0, cv[sel, 2].min()))
                ball[sel, 2] -= drop
            ball[:, 2] = np.maximum(ball[:, 2], 0.0)
            for name, pred in (("copy_last", x1), ("constant_velocity", cv), ("ballistic", ball)):
                per[name].append((ti, len(body), float(((pred - y) ** 2).mean())))
    out = {}
    for name, rows in per.items():
        traj = np.array([r[0] for r in rows])
        n = np.array([r[1] for r in rows], float)
        l = np.array([r[2] for r in rows])
        mean = (n * l).sum() / n.sum()
        G = len(set(traj.tolist()))
        u = [sum(n[i] * (l[i] - mean) for i in range(len(l)) if traj[i] == c) for c in set(traj)]
        se = math.sqrt(G / (G - 1) * sum(x * x for x in u)) / n.sum()
        out[name] = (mean, se, len(l))
    return out


@pytest.mark.parametrize("delta", [1, 4])
def test_baselines_equal_an_independent_computation_on_the_same_windows(eval_dataset, delta):
    rows = baseline_rows(eval_dataset, delta)
    assert {(r["split"], r["baseline"]) for r in rows} == {
        (s, b) for s in ("val", "test") for b in BASELINES}
    for split in ("val", "test"):
        ds = RigidBodyDataset(eval_dataset, split=split, delta=delta)
        w = eval_windows(ds)
        starts = {t: w.start[w.trajectory == t].tolist() for t in range(len(ds))}
        ref = _independent_baselines(eval_dataset, split, delta, starts.__getitem__)
        for r in rows:
            if r["split"] != split:
                continue
            mean, se, n = ref[r["baseline"]]
            assert r["windows"] == n == len(w)
            assert r["loss"] == pytest.approx(mean, rel=1e-4), r["baseline"]
            assert r["loss_se"] == pytest.approx(se, rel=1e-3), r["baseline"]
            assert r["dataset"] == load_manifest(eval_dataset)["key"] and r["delta"] == delta


def test_baselines_order_copy_worst_ballistic_best(eval_dataset):
    rows = {r["baseline"]: r["loss"] for r in baseline_rows(eval_dataset, 4, splits=("test",))}
    assert rows["ballistic"] < rows["constant_velocity"] < rows["copy_last"]
