"""Bootstrap confidence intervals for the log-sum-exp Huber fits.

A resample draws points (or whole groups of points, e.g. all points of one trial) with
replacement; it enters the objective as integer draw counts per point, so every resample of
a fit is one more row block of the same batched L-BFGS problem. Each resample restarts from
the distinct optima the full-data grid found (its own best basin is among them unless the
resample moves it far away), polishes to the same tolerance as the main fit, and keeps its
best. Resamples are split over processes; all randomness is drawn in the parent from `seed`,
so the answer does not depend on the number of workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from equisweep.analysis.lawfit import POLISH, SCIPY_LIKE, LawFit
from equisweep.analysis.lbfgs import minimize_batched

CI_LEVEL = 0.95


@dataclass
class Bootstrap:
    theta: np.ndarray  # (R_ok, P) raw parameters of the resamples that converged
    n_requested: int
    seconds: float = 0.0

    @property
    def n_ok(self) -> int:
        return int(self.theta.shape[0])


def draw_weights(n_points: int, n_boot: int, seed: int, groups=None) -> np.ndarray:
    """(n_boot, n_points) draw counts. With `groups` (label per point), whole groups are drawn."""
    rng = np.random.default_rng(seed)
    if groups is None:
        idx = rng.integers(0, n_points, size=(n_boot, n_points))
        return np.apply_along_axis(np.bincount, 1, idx, minlength=n_points).astype(float)
    labels, inv = np.unique(np.asarray(groups), return_inverse=True)
    g = labels.size
    idx = rng.integers(0, g, size=(n_boot, g))
    counts = np.apply_along_axis(np.bincount, 1, idx, minlength=g).astype(float)
    return counts[:, inv]


def bootstrap_fit(
    form,
    covariates,
    loss,
    base: LawFit,
    *,
    n_boot: int = 200,
    seed: int = 0,
    groups=None,
    workers: int | None = None,
    progress: bool = False,
) -> Bootstrap:
    import time

    t0 = time.perf_counter()
    log_x = np.log(np.vstack([np.asarray(c, dtype=float) for c in covariates]))
    log_l = np.log(np.asarray(loss, dtype=float))
    if n_boot <= 0:
        return Bootstrap(theta=np.empty((0, len(form.params))), n_requested=0)
    W = draw_weights(log_l.size, n_boot, seed, groups)
    starts = base.local_optima if len(base.local_optima) else base.theta[None, :]
    work = n_boot * len(starts) * log_l.size
    if workers is None:
        # below this, process start-up costs more than it saves
        workers = _cpu_count() if work > 100_000 else 1
    workers = max(1, min(workers, n_boot))
    chunks = [c for c in np.array_split(np.arange(n_boot), workers * 4 if workers > 1 else 1)]
    payload = [(form, log_x, log_l, W[c], starts) for c in chunks]
    results = []
    if workers == 1:
        it = map(_fit_chunk, payload)
        results = list(_progress(it, len(payload), progress))
    else:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            results = list(_progress(pool.map(_fit_chunk, payload), len(payload), progress))
    theta = np.concatenate(results, axis=0)
    theta = theta[np.all(np.isfinite(theta), axis=1)]
    return Bootstrap(theta=theta, n_requested=n_boot, seconds=time.perf_counter() - t0)


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _progress(it, total, enabled):
    if not enabled or total < 2:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc="bootstrap", unit="chunk", leave=False)


def _fit_chunk(payload):
    form, log_x, log_l, W, starts = payload
    R, S = W.shape[0], len(starts)
    row_map = np.repeat(np.arange(R), S)
    x0 = np.tile(starts, (R, 1))
    obj = form.objective(log_x, log_l, weights=W, row_map=row_map, threads=1)
    res = minimize_batched(obj, x0, **SCIPY_LIKE)
    f = np.where(np.isfinite(res.f), res.f, np.inf).reshape(R, S)
    pick = np.argmin(f, axis=1)
    best_rows = np.arange(R) * S + pick
    obj_p = form.objective(log_x, log_l, weights=W, row_map=np.arange(R), threads=1)
    pol = minimize_batched(obj_p, res.x[best_rows], **POLISH)
    out = pol.x.copy()
    out[~np.isfinite(pol.f)] = np.nan
    return out


def summarize(samples: np.ndarray, level: float = CI_LEVEL) -> dict:
    """se (std, ddof=1) and the percentile interval of 1-D bootstrap samples (NaNs dropped)."""
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size < 2:
        return {"se": None, "ci": None, "n": int(s.size)}
    q = (1 - level) / 2
    lo, hi = np.quantile(s, [q, 1 - q])
    # scaled, so that replicates of an undetermined prefactor (A ~ 1e200) do not overflow
    # when squared; the s.e. of such a fit is huge and says so
    scale = float(np.max(np.abs(s))) or 1.0
    se = float(np.std(s / scale, ddof=1)) * scale
    return {"se": se, "ci": [float(lo), float(hi)], "n": int(s.size)}
