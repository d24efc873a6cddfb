"""L(N, S) = E + A/N^α + B/S^β: the additive form of Hoffmann et al. 2022 (Approach 3) and
Besiroglu et al. 2024; Kaplan et al. 2020 fit L(N, S) this way after warmup. The gap between
two sizes is the same at every length (no N×S interaction)."""

from __future__ import annotations

import numpy as np

from equisweep.analysis import lawfit
from equisweep.analysis.laws.base import LawForm


class Additive(LawForm):
    def log_predict_grad(self, theta, log_x):
        theta = np.atleast_2d(theta)
        a, b, e, al, be = (theta[:, i : i + 1] for i in range(5))
        lN, lS = log_x[0][None, :], log_x[1][None, :]
        T = np.stack(np.broadcast_arrays(a - al * lN, b - be * lS, e + 0 * lN))
        m = T.max(axis=0)
        w = np.exp(T - m)
        s = w.sum(axis=0)
        lp = m + np.log(s)
        p = w / s
        J = np.stack([p[0], p[1], p[2], -p[0] * lN, -p[1] * lS], axis=-1)
        return lp, J

    def objective(
        self, log_x, log_l, delta=lawfit.HUBER_DELTA, weights=None, row_map=None, threads=None
    ):
        # the LSE-of-linear-terms fast path (threads, one exp per term) of lawfit
        return lawfit.HuberLSE(
            lawfit.TWO_VAR.design(log_x),
            log_l,
            delta=delta,
            weights=weights,
            row_map=row_map,
            threads=threads,
        )

    def named(self, theta):
        c = lawfit.TWO_VAR.named(theta)
        c["alpha/beta"] = c["alpha"] / c["beta"]
        return c


FORM = Additive(
    name="additive",
    params=("a", "b", "e", "alpha", "beta"),
    formula="L(N, S) = E + A/N^alpha + B/S^beta",
    source="Hoffmann et al. 2022 (Approach 3); Besiroglu et al. 2024",
)
