"""What a law form of L(N, S) is: the plug-in contract of analysis/laws/.

A form declares its raw parameters (the optimiser's coordinates), the start grid scaled to
the data, the log prediction with its gradient (so every form is fitted by the same Huber
objective on log L and the same batched L-BFGS, lbfgs.py), and its user coefficients.
Every form here has asymptotic exponents α (in N) and β (in S), so the compute-optimal
exponents follow from them alone (frontier.exponents); the allocation itself is found
numerically from the prediction (frontier.allocation), so a new form needs nothing else.

Raw parameters are unbounded; `bounds` are the plausible box the validity checks and the
start grid respect (an exponent outside it is reported, never clipped).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from equisweep.analysis.lawfit import HUBER_DELTA

EXPONENT_STARTS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5)
PREFACTOR_SHIFTS = (-3.0, 0.0, 3.0)
FLOOR_FRACTIONS = (0.01, 0.3, 0.6, 0.9)


@dataclass(frozen=True)
class LawForm:
    """Base of every L(N, S) form; subclasses define _log_predict_grad and named."""

    name: str
    params: tuple[str, ...]
    formula: str
    source: str
    n_covariates: int = 2

    @property
    def n_params(self) -> int:
        return len(self.params)

    @property
    def has_floor(self) -> bool:
        return "e" in self.params

    def log_predict(self, theta, log_x) -> np.ndarray:
        """log L̂, (K, n) for theta (K, P) at log covariates (2, n)."""
        return self.log_predict_grad(np.atleast_2d(theta), log_x)[0]

    def log_predict_grad(self, theta, log_x):
        """(log L̂ (K, n), d log L̂ / d theta (K, n, P))."""
        raise NotImplementedError

    def named(self, theta) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def starts(self, log_x, log_l) -> np.ndarray:
        """The start grid: exponents over EXPONENT_STARTS, each prefactor putting its term at
        e^{−3, 0, +3} times the median loss at the covariate's mean, a floor (if any) at
        FLOOR_FRACTIONS of the smallest loss. Columns in `params` order."""
        lmed, lmin = float(np.median(log_l)), float(np.min(log_l))
        mx, ms = float(np.mean(log_x[0])), float(np.mean(log_x[1]))
        e_vals = lmin + np.log(FLOOR_FRACTIONS) if self.has_floor else [None]
        rows = []
        for al, be, e, sa, sb in itertools.product(
            EXPONENT_STARTS, EXPONENT_STARTS, e_vals, PREFACTOR_SHIFTS, PREFACTOR_SHIFTS
        ):
            v = {
                "a": lmed + al * mx + sa,
                "b": lmed + be * ms + sb,
                "alpha": al,
                "beta": be,
                "e": e,
            }
            rows.append([v[p] for p in self.params])
        return np.array(rows, dtype=float)

    def objective(self, log_x, log_l, delta=HUBER_DELTA, weights=None, row_map=None, threads=None):
        return HuberObjective(self, log_x, log_l, delta, weights, row_map)

    def predict(self, theta, N, S) -> np.ndarray:
        """L̂ at (N, S) (broadcast) for raw theta (P,) or replicates (R, P) -> (R, ...)."""
        theta = np.asarray(theta, dtype=float)
        N, S = np.broadcast_arrays(np.asarray(N, dtype=float), np.asarray(S, dtype=float))
        shape = N.shape
        lx = np.vstack([np.log(N).ravel(), np.log(S).ravel()])
        with np.errstate(all="ignore"):
            out = np.exp(self.log_predict(theta, lx))
        return out.reshape((-1,) + shape) if theta.ndim > 1 else out.reshape(shape)


class HuberObjective:
    """Σ_i w_i·Huber_δ(log L̂_i − log L_i) and its gradient, batched over rows (the same
    objective as lawfit.HuberLSE, for any form that gives its prediction's gradient)."""

    def __init__(self, form, log_x, log_l, delta=HUBER_DELTA, weights=None, row_map=None):
        self.form = form
        self.log_x = np.asarray(log_x, dtype=float)
        self.y = np.asarray(log_l, dtype=float)
        self.delta = float(delta)
        self.W = np.ones_like(self.y) if weights is None else np.asarray(weights, dtype=float)
        self.row_map = row_map

    def __call__(self, theta, rows):
        with np.errstate(all="ignore"):
            lp, J = self.form.log_predict_grad(theta, self.log_x)
            r = lp - self.y
            c = np.clip(r, -self.delta, self.delta)
            w = self.W if self.W.ndim == 1 else self.W[self.row_map[rows]]
            f = np.sum(w * c * (r - 0.5 * c), axis=1)
            g = np.einsum("kn,knp->kp", w * c, J)
        bad = ~(np.isfinite(f) & np.all(np.isfinite(g), axis=1))
        f[bad] = np.nan
        return f, g


def lse2(t1, t2):
    """(log(e^t1 + e^t2), softmax weight of t1), elementwise and overflow-safe."""
    m = np.maximum(t1, t2)
    e1, e2 = np.exp(t1 - m), np.exp(t2 - m)
    s = e1 + e2
    return m + np.log(s), e1 / s
