"""Fixed evaluation windows and the loss estimate with its clustered standard error.

Why fixed: a loss compared between two trials must be measured on the same samples, or the
comparison carries the sampling noise of both (DESIGN §3). So the windows of a split depend
only on the dataset and `delta` — never on a trial's seed — and every trial of a dataset sees
exactly the same ones (paired comparisons).

Which windows:

- **test**: every `TEST_STRIDE`-th window (8) of every trajectory, at a phase rotating with
  the trajectory (trajectory i keeps windows w with w % 8 == i % 8; the stride is capped at
  the windows per trajectory, so every trajectory keeps at least one). Measured
  (bench/task/bench_stride.py, bench/BENCHMARKS.md "Thinning the test windows" and "Cheap
  evaluation"): window losses of one trajectory are strongly correlated (lag-1/2/4
  correlation 0.88/0.69/0.30 on the CPU study's task, delta 8, 23 windows), so thinning
  costs little precision. On 512 test trajectories of that task the clustered SE of two
  trained transformers at rotated stride 8 is 1.06–1.09× their every-window SE (stride 3:
  1.01–1.02×, stride 6: 1.07–1.08×, stride 12: 1.5×), the loss within 0.7%; constant
  velocity, less correlated (0.79 at lag 1), loses more (1.47× at stride 8; its relative SE
  stays below the models'). Cost: at the study's largest size (GATr 8×2, 2,000 steps, 2048
  test trajectories) the test evaluation is 9.2% of the training wall at stride 8 (12.5% at
  6, 25% at 3; bench/task/bench_eval_share.py), with batches ordered by scene size (below).
  The phase must rotate: a fixed phase biases the loss (every trajectory is thrown the same
  way, so window positions are not exchangeable: −2 to −3% at stride 3, −11 to −15% at
  stride 8). At delta 1 with short trajectories thinning costs more (issue 9: constant
  velocity's rse 3.3% → 5.3% at stride 2, fixed phase): re-measure before a study at a
  small delta.
- **val** (every `eval_every` steps): every `VAL_STRIDE`-th window (2: val is evaluated
  often, and at stride 2 windows are nearly independent, so precision per window evaluated
  is about the same as at stride 1) of the first k trajectories of the val split, k chosen
  once per dataset by `val_trajectories_for` so that a trained model's relative standard
  error is about `VAL_TARGET_RSE` (5%). The size is measured, not guessed: the per-window
  errors of the constant-velocity baseline on the full val split give its relative SE, and
  a trained model's errors are more heavy-tailed than the baseline's (on the quickstart,
  models' relative SEs were 1.3–1.75× the baseline's on the same windows:
  `MODEL_TAIL_FACTOR` = 1.6, bench/BENCHMARKS.md). Cluster SEs scale as 1/sqrt(clusters),
  so k = K·(1.6·rse_cv / 5%)², at least `MIN_VAL_TRAJECTORIES`, at most all K (then the
  target is not reached: add val trajectories). Every row stores `val_loss_se`, so the
  target can be checked on the trained models themselves. Cost: at the study's largest
  size its four evaluations of a 2,000-step trial (57 of the 64 val trajectories) are 4% of
  the training wall (bench_eval_share.py), so val is left as it is.

Evaluation batches hold windows of similar scene size (ordered by token count, stably), so
a batch pads little; losses come back in set order. All members of a stack are evaluated
in one pass (`evaluate_members`).

The loss of a set of windows is token-weighted, as in training: per window i, l_i is the mean
squared error per coordinate over its n_i vertex tokens, and the set's loss is
L = Σ n_i l_i / Σ n_i. Its standard error is the cluster-robust (sandwich, CR1) standard
error of this ratio estimator, with one cluster per trajectory g:

    u_g = Σ_{i ∈ g} n_i (l_i − L),    SE(L)² = G/(G−1) · Σ_g u_g² / (Σ_i n_i)²

Windows of one trajectory are correlated (the same bodies, the same contacts), so treating
them as independent would understate the error by the square root of the design effect; the
clustered form needs only the trajectories to be independent, which they are (disjoint
seeds). tests/task/test_task_evaluation.py checks it recovers the true standard error of a
clustered, heavy-tailed synthetic distribution.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

TEST_STRIDE = 8
VAL_STRIDE = 2
VAL_TARGET_RSE = 0.05
MODEL_TAIL_FACTOR = 1.6  # trained models' relative SE / constant velocity's, measured
EVAL_BATCH = 64  # windows per forward pass; trajectory-major, so little padding
# Fewer clusters than this and the clustered SE itself is too noisy to trust.
MIN_VAL_TRAJECTORIES = 8


@dataclass(frozen=True)
class Estimate:
    """A loss over a window set: value, clustered standard error, windows and clusters."""

    loss: float
    se: float
    windows: int
    trajectories: int

    @property
    def rse(self) -> float:
        return self.se / self.loss if self.loss > 0 else math.nan


def clustered_mean(losses, weights, clusters) -> Estimate:
    """Weighted mean of per-window `losses` with its cluster-robust (CR1) standard error.

    `weights` (tokens per window) and `clusters` (trajectory ids) are aligned with `losses`.
    With a single cluster the SE is undefined (NaN).
    """
    l = np.asarray(losses, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    c = np.asarray(clusters)
    if not (l.shape == w.shape == c.shape) or l.ndim != 1:
        raise ValueError("losses, weights and clusters must be 1-D arrays of one length")
    if l.size == 0:
        return Estimate(math.nan, math.nan, 0, 0)
    total = w.sum()
    mean = float((w * l).sum() / total)
    _, inverse = np.unique(c, return_inverse=True)
    u = np.bincount(inverse, weights=w * (l - mean))
    g = u.size
    se = math.sqrt(g / (g - 1) * float((u ** 2).sum())) / total if g > 1 else math.nan
    return Estimate(mean, se, int(l.size), int(g))


@dataclass(frozen=True)
class WindowSet:
    """Window (trajectory, start) pairs of one split, trajectory-major."""

    split: str
    trajectory: np.ndarray
    start: np.ndarray
    stride: int

    def __len__(self) -> int:
        return int(self.trajectory.size)

    @property
    def trajectories(self) -> int:
        return int(np.unique(self.trajectory).size)

    def batches(self, dataset, batch_size: int) -> Iterator[tuple[dict, np.ndarray]]:
        """(collated batch, positions in the set of its windows): windows ordered by their
        scene's token count (stably, so set order within one count), so a batch pads
        little (scenes of 3-5 bodies padded to the batch's largest wasted a fifth of a
        trajectory-major batch's work, more of attention's)."""
        order = np.argsort(dataset.scene_tokens()[self.trajectory], kind="stable")
        for lo in range(0, len(self), batch_size):
            pos = order[lo:lo + batch_size]
            yield dataset.batch(self.trajectory[pos], self.start[pos]), pos


def window_set(dataset, stride: int, trajectories: int | None = None,
               rotate: bool = False) -> WindowSet:
    """Every `stride`-th window start of the first `trajectories` trajectories, from 0 or,
    with `rotate`, from trajectory index mod stride (every window position equally often)."""
    if stride < 1:
        raise ValueError(f"stride must be >= 1, got {stride}")
    n = len(dataset) if trajectories is None else min(int(trajectories), len(dataset))
    phases = range(stride) if rotate else [0]
    starts = {p: np.arange(p, dataset.windows, stride, dtype=np.int64) for p in phases}
    per = [starts[i % stride if rotate else 0] for i in range(n)]
    traj = np.repeat(np.arange(n, dtype=np.int64), [s.size for s in per])
    start = np.concatenate(per) if per else np.zeros(0, np.int64)
    return WindowSet(dataset.split, traj, start, int(stride))


def per_window_losses(predict: Callable[[dict], object], windows: WindowSet, dataset,
                      batch_size: int = EVAL_BATCH, device=None,
                      on_batch: Callable[[dict], None] | None = None):
    """(losses, tokens, trajectory ids) of `predict` (a model or a baseline) on `windows`.

    `predict(batch)` returns (B, V, 3) positions, or (K, B, V, 3) for K stacked models (then
    losses are (K, windows)); `on_batch(batch)` sees each batch before it is predicted (for
    FLOP accounting).
    """
    import torch

    losses, tokens, where = [], [], []
    # no_grad, not inference_mode: cached algebra tables (pga) must stay usable by autograd.
    with torch.no_grad():
        for batch, pos in windows.batches(dataset, batch_size):
            if device is not None:
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            if on_batch is not None:
                on_batch(batch)
            pred = predict(batch)
            mask = batch["mask"].unsqueeze(-1).to(torch.float32)
            err = ((pred.float() - batch["y"].float()) ** 2 * mask).sum(dim=(-2, -1))
            n = batch["mask"].sum(dim=1).to(torch.float64)
            losses.append((err.double() / (3 * n).clamp_min(1)).cpu().numpy())
            tokens.append(n.cpu().numpy())
            where.append(pos)
    if not losses:
        return np.zeros(0), np.zeros(0), np.zeros(0, np.int64)
    back = np.argsort(np.concatenate(where))  # batches ran by length; give set order
    return (np.concatenate(losses, -1)[..., back], np.concatenate(tokens)[back],
            windows.trajectory.copy())


def evaluate(predict, windows: WindowSet, dataset, batch_size: int = EVAL_BATCH, device=None,
             on_batch=None) -> Estimate:
    """Token-weighted loss of `predict` on `windows` with its clustered standard error."""
    losses, tokens, traj = per_window_losses(predict, windows, dataset, batch_size, device,
                                             on_batch)
    return clustered_mean(losses, tokens, traj)


def evaluate_members(predict, windows: WindowSet, dataset, batch_size: int = EVAL_BATCH,
                     device=None, on_batch=None) -> list[Estimate]:
    """`evaluate` for K stacked models in one pass (`predict` returns (K, B, V, 3)): one
    estimate per member, each exactly what `evaluate` gives for that member alone."""
    losses, tokens, traj = per_window_losses(predict, windows, dataset, batch_size, device,
                                             on_batch)
    return [clustered_mean(row, tokens, traj) for row in np.atleast_2d(losses)]


def val_trajectories_for(estimate: Estimate, target_rse: float = VAL_TARGET_RSE,
                         tail_factor: float = MODEL_TAIL_FACTOR) -> int:
    """Smallest number of val trajectories at which a model's clustered relative SE is
    expected ≤ `target_rse`, from the baseline's `estimate` on all K of them (a model's rse ≈
    `tail_factor` × the baseline's; rse scales as 1/sqrt(trajectories)); at least
    `MIN_VAL_TRAJECTORIES`, at most K."""
    k_all = estimate.trajectories
    if k_all == 0 or not math.isfinite(estimate.rse):
        return k_all
    need = math.ceil(k_all * (tail_factor * estimate.rse / target_rse) ** 2 - 1e-9)
    return int(min(k_all, max(MIN_VAL_TRAJECTORIES, need)))


def eval_windows(dataset) -> WindowSet:
    """The fixed window set of a val or test split (see the module docstring)."""
    if dataset.split == "test":
        return window_set(dataset, max(1, min(TEST_STRIDE, dataset.windows)), rotate=True)
    if dataset.split != "val":
        raise ValueError(f"evaluation windows are for val and test, not {dataset.split!r}")
    from equisweep.task.baselines import constant_velocity

    full = window_set(dataset, VAL_STRIDE)
    if len(full) == 0:
        return full
    probe = evaluate(lambda b: constant_velocity(b, dataset.delta), full, dataset)
    return window_set(dataset, VAL_STRIDE, val_trajectories_for(probe))
