"""L(N, S) = ((N_c/N)^(α/β) + S_c/S)^β: the N×D interaction form of Kaplan et al. 2020
(their eq. 1.5, with steps in place of tokens), no floor. Sizes tie early and separate late:
at short S the S-term dominates for every N.

Raw parameters (a, b, alpha, beta) with A = e^a = N_c^α and B = e^b = S_c^β, so that
L = ((A/N^α)^(1/β) + (B/S^β)^(1/β))^β: the additive terms combined by a 1/β-norm instead of
a sum, and log L = β·LSE((a − α log N)/β, b/β − log S)."""

from __future__ import annotations

import numpy as np

from equisweep.analysis.laws.base import LawForm, lse2


def kaplan_log(theta, log_x, k0=0):
    """log L̂ and gradient of the interaction term, parameters theta[:, k0:k0+4] as
    (a, b, alpha, beta) — shared with kaplan_e."""
    a, b, al, be = (theta[:, k0 + i : k0 + i + 1] for i in range(4))
    lN, lS = log_x[0][None, :], log_x[1][None, :]
    t1 = (a - al * lN) / be
    t2 = b / be - lS
    u, p1 = lse2(t1, t2)
    p2 = 1.0 - p1
    lp = be * u
    J = np.stack(np.broadcast_arrays(p1, p2, -p1 * lN, u - p1 * t1 - p2 * b / be), axis=-1)
    return lp, J


class Kaplan(LawForm):
    def log_predict_grad(self, theta, log_x):
        return kaplan_log(np.atleast_2d(theta), log_x)

    def named(self, theta):
        return kaplan_named(
            theta, dict(zip(self.params, np.moveaxis(np.asarray(theta, float), -1, 0)))
        )


def kaplan_named(theta, p):
    with np.errstate(all="ignore"):
        out = {
            "A": np.exp(p["a"]),
            "B": np.exp(p["b"]),
            "alpha": p["alpha"],
            "beta": p["beta"],
            "alpha/beta": p["alpha"] / p["beta"],
            "N_c": np.exp(p["a"] / p["alpha"]),
            "S_c": np.exp(p["b"] / p["beta"]),
        }
        if "e" in p:
            out = {"E": np.exp(p["e"]), **out}
    return out


FORM = Kaplan(
    name="kaplan",
    params=("a", "b", "alpha", "beta"),
    formula="L(N, S) = ((N_c/N)^(alpha/beta) + S_c/S)^beta",
    source="Kaplan et al. 2020, eq. 1.5 (L(N, D)), with steps for tokens",
)
