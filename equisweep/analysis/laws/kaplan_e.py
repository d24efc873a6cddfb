"""L(N, S) = E + ((N_c/N)^(α/β) + S_c/S)^β: the Kaplan-type interaction form with an
irreducible floor E (raw parameters (a, b, e, alpha, beta); see kaplan.py)."""

from __future__ import annotations

import numpy as np

from equisweep.analysis.laws.base import LawForm, lse2
from equisweep.analysis.laws.kaplan import kaplan_log, kaplan_named


class KaplanE(LawForm):
    def log_predict_grad(self, theta, log_x):
        theta = np.atleast_2d(theta)
        # kaplan_log reads (a, b, alpha, beta): columns 0, 1, 3, 4
        lk, Jk = kaplan_log(theta[:, [0, 1, 3, 4]], log_x)
        e = theta[:, 2:3]
        lp, pe = lse2(np.broadcast_to(e, lk.shape), lk)
        pk = (1.0 - pe)[..., None]
        J = np.concatenate([pk * Jk[..., :2], pe[..., None], pk * Jk[..., 2:]], axis=-1)
        return lp, J

    def named(self, theta):
        return kaplan_named(
            theta, dict(zip(self.params, np.moveaxis(np.asarray(theta, float), -1, 0)))
        )


FORM = KaplanE(
    name="kaplan_e",
    params=("a", "b", "e", "alpha", "beta"),
    formula="L(N, S) = E + ((N_c/N)^(alpha/beta) + S_c/S)^beta",
    source="Kaplan et al. 2020, eq. 1.5, plus an irreducible loss E",
)
