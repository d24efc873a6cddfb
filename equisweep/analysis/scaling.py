"""Fit + bootstrap in one call, with the data requirements that decide whether a fit is
determined at all, and JSON blocks (value, se, ci) for fits.json."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from equisweep.analysis import lawfit
from equisweep.analysis.bootstrap import Bootstrap, bootstrap_fit, summarize


class NotEnoughData(Exception):
    """A fit that the data cannot determine; the message says what is missing."""


@dataclass
class FitWithCI:
    fit: lawfit.LawFit
    boot: Bootstrap

    @property
    def form(self):
        return self.fit.form

    def samples(self) -> dict[str, np.ndarray]:
        """Bootstrap replicates of the user coefficients (E, A, ...)."""
        return self.form.named(self.boot.theta)

    def coef_blocks(self) -> dict:
        reps = self.samples()
        return {k: block(v, reps.get(k)) for k, v in self.fit.coefs.items()}


def block(value, samples=None) -> dict:
    """{"value", "se", "ci"} for a scalar with optional bootstrap samples."""
    out = {"value": _num(value), "se": None, "ci": None}
    if samples is not None and np.size(samples):
        s = summarize(samples)
        out["se"], out["ci"] = s["se"], s["ci"]
    return out


def band(values, samples=None, level=0.95) -> dict:
    """{"value": [...], "lo": [...], "hi": [...]} for a curve with (R, n) replicates."""
    out = {"value": [_num(v) for v in np.ravel(values)], "lo": None, "hi": None}
    if samples is not None and np.size(samples) and np.shape(samples)[0] >= 2:
        s = np.asarray(samples, dtype=float)
        q = (1 - level) / 2
        with np.errstate(all="ignore"):
            lo = np.nanquantile(np.where(np.isfinite(s), s, np.nan), q, axis=0)
            hi = np.nanquantile(np.where(np.isfinite(s), s, np.nan), 1 - q, axis=0)
        out["lo"], out["hi"] = [_num(v) for v in lo], [_num(v) for v in hi]
    return out


def _num(v):
    v = float(v)
    return v if np.isfinite(v) else None


def require_two_var(N, S, min_distinct=3, min_points=6, names=("N", "S")):
    n_n, n_s, n = len(np.unique(N)), len(np.unique(S)), len(N)
    if n_n < min_distinct:
        raise NotEnoughData(f"need ≥ {min_distinct} distinct {names[0]} (have {n_n})")
    if n_s < min_distinct:
        raise NotEnoughData(f"need ≥ {min_distinct} distinct {names[1]} (have {n_s})")
    if n < min_points:
        raise NotEnoughData(f"need ≥ {min_points} points (have {n})")


def require_one_var(x, min_distinct=4, name="x"):
    k = len(np.unique(x))
    if k < min_distinct:
        raise NotEnoughData(f"need ≥ {min_distinct} distinct {name} (have {k})")


def fit_with_ci(
    form, covariates, loss, *, n_boot=200, seed=0, starts=None, groups=None, workers=None,
    progress=False,
) -> FitWithCI:
    f = lawfit.fit(form, covariates, loss, starts=starts)
    b = bootstrap_fit(form, covariates, loss, f, n_boot=n_boot, seed=seed, groups=groups,
                      workers=workers, progress=progress)
    return FitWithCI(fit=f, boot=b)


def grid_starts(form, covariates, loss, grid: str = "adaptive", n_starts: int | None = None,
                seed: int = 0) -> np.ndarray:
    """The start grid: "besiroglu" (their 4,500, for data on their scale) or "adaptive"
    (scaled to the data); `n_starts` keeps a seeded random subset."""
    log_x = np.log(np.vstack([np.asarray(c, dtype=float) for c in covariates]))
    log_l = np.log(np.asarray(loss, dtype=float))
    if form is lawfit.ONE_VAR:
        g = lawfit.one_var_grid(log_x[0], log_l)
    elif grid == "besiroglu":
        g = lawfit.besiroglu_grid()
    else:
        g = lawfit.adaptive_grid(log_x, log_l)
    if n_starts is not None and 0 < n_starts < len(g):
        idx = np.sort(np.random.default_rng(seed).choice(len(g), n_starts, replace=False))
        g = g[idx]
    return g
