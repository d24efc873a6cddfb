"""Compute-optimal allocation from a fitted L(N, S) and the family's own FLOP formula.

With S training steps and F(N) FLOPs per step, a budget C buys S = C / F(N), and

    L*(C) = min_N  E + A/N^α + B·(F(N)/C)^β.

Each trial in the store knows its n_params and flops_per_step, so F is fitted over the
family's trials. Default: F(N) = k·N^p by least squares in log-log (FLOPs per step of a
transformer-like model are close to a power of N; GATr's dense 16×16 multivector maps and
attention make p differ from 1, which is why one C = 6ND rule cannot serve both families).
Then the optimum has a closed form,

    N_opt = (αA / (pβB))^{1/(α+pβ)} · (C/k)^{β/(α+pβ)},   S_opt = C / (k·N_opt^p).

When a power law describes the family's FLOPs badly (max relative error above
POWER_TOLERANCE), F is the piecewise-linear log-log interpolation of the per-size values
(extended linearly past the ends) and the minimum over N is found numerically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POWER_TOLERANCE = 0.05


@dataclass
class FlopsModel:
    kind: str  # "power" or "interp"
    k: float = float("nan")
    p: float = float("nan")
    log_n: np.ndarray | None = None  # knots for "interp"
    log_f: np.ndarray | None = None
    max_rel_error: float = float("nan")  # of the power fit over the trials
    n_sizes: int = 0

    def __call__(self, N):
        N = np.asarray(N, dtype=float)
        if self.kind == "power":
            return self.k * N**self.p
        u = np.log(N)
        lo, hi = self.log_n, self.log_f
        if lo.size == 1:
            return np.exp(hi[0]) * N / np.exp(lo[0])
        out = np.interp(u, lo, hi)
        s0 = (hi[1] - hi[0]) / (lo[1] - lo[0])
        s1 = (hi[-1] - hi[-2]) / (lo[-1] - lo[-2])
        out = np.where(u < lo[0], hi[0] + s0 * (u - lo[0]), out)
        out = np.where(u > lo[-1], hi[-1] + s1 * (u - lo[-1]), out)
        return np.exp(out)

    def to_json(self) -> dict:
        d = {"kind": self.kind, "n_sizes": self.n_sizes}
        if self.kind == "power":
            d.update(k=self.k, p=self.p, max_rel_error=self.max_rel_error)
        else:
            d.update(
                log_n=self.log_n.tolist(),
                log_flops=self.log_f.tolist(),
                power_fit_max_rel_error=self.max_rel_error,
            )
        return d


def fit_flops(n_params, flops_per_step, force: str | None = None) -> FlopsModel:
    """F(N) from per-trial (n_params, flops_per_step). One size: p = 1 (the per-trial ratio)."""
    N = np.asarray(n_params, dtype=float)
    F = np.asarray(flops_per_step, dtype=float)
    ok = np.isfinite(N) & np.isfinite(F) & (N > 0) & (F > 0)
    N, F = N[ok], F[ok]
    if N.size == 0:
        raise ValueError("no trial has positive n_params and flops_per_step")
    uN, inv = np.unique(N, return_inverse=True)
    # one FLOP count per size: the median over trials of that size (they should agree)
    uF = np.array([np.median(F[inv == i]) for i in range(uN.size)])
    if uN.size == 1:
        return FlopsModel("power", k=float(uF[0] / uN[0]), p=1.0, max_rel_error=0.0, n_sizes=1)
    p, logk = np.polyfit(np.log(uN), np.log(uF), 1)
    pred = np.exp(logk) * uN**p
    err = float(np.max(np.abs(pred / uF - 1)))
    if force == "power" or (force is None and err <= POWER_TOLERANCE):
        return FlopsModel("power", k=float(np.exp(logk)), p=float(p), max_rel_error=err,
                          n_sizes=int(uN.size))
    return FlopsModel("interp", log_n=np.log(uN), log_f=np.log(uF), max_rel_error=err,
                      n_sizes=int(uN.size))


def allocation(coefs: dict, flops: FlopsModel, C, method: str = "auto") -> dict:
    """N_opt, S_opt, L* at budgets C for coefficient dict(s) with E, A, B, alpha, beta.

    method: "auto" (closed form for a power-law F, numerical otherwise) or "numerical".

    Coefficients may be scalars or arrays of R bootstrap replicates (then outputs are (R, nC)).
    """
    C = np.asarray(C, dtype=float)
    E, A, B, al, be = (np.asarray(coefs[k], dtype=float) for k in ("E", "A", "B", "alpha", "beta"))
    batched = E.ndim > 0
    if batched:
        E, A, B, al, be = (v[:, None] for v in (E, A, B, al, be))
    if flops.kind == "power" and method != "numerical":
        N, S = _closed_form(A, B, al, be, flops.k, flops.p, C)
    else:
        N, S = _numerical(A, B, al, be, flops, C)
    # in log space, as the fit is evaluated; a bootstrap replicate whose optimum ran off to
    # N = 0 or ∞ (a flat direction) gets a non-finite L*, which the bands drop
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        L = np.exp(np.logaddexp.reduce(np.broadcast_arrays(
            np.log(E), np.log(A) - al * np.log(N), np.log(B) - be * np.log(S))))
    return {"N_opt": N, "S_opt": S, "L_opt": L}


def _closed_form(A, B, al, be, k, p, C):
    with np.errstate(all="ignore"):
        den = al + p * be
        N = (al * A / (p * be * B)) ** (1.0 / den) * (C / k) ** (be / den)
        N = np.where((al > 0) & (be > 0), N, np.nan)
        S = C / (k * N**p)
    return N, S


def _numerical(A, B, al, be, flops: FlopsModel, C, n_grid=801, n_refine=40):
    """Vectorised over budgets and replicates: dense grid in log N, then golden section."""
    lo = flops.log_n[0] - 12.0 if flops.log_n is not None else -30.0
    hi = flops.log_n[-1] + 12.0 if flops.log_n is not None else 80.0
    shape = np.broadcast(A, C).shape

    def loss(u):
        N = np.exp(u)
        with np.errstate(all="ignore"):
            return A / N**al + B * (flops(N) / C) ** be

    u = np.linspace(lo, hi, n_grid)
    vals = np.stack([np.broadcast_to(loss(ui), shape) for ui in u])
    i = np.clip(np.nanargmin(np.where(np.isfinite(vals), vals, np.inf), axis=0), 1, n_grid - 2)
    a, b = u[i - 1], u[i + 1]
    g = (np.sqrt(5) - 1) / 2
    for _ in range(n_refine):
        c, d = b - g * (b - a), a + g * (b - a)
        left = loss(c) < loss(d)
        b = np.where(left, d, b)
        a = np.where(left, a, c)
    uo = (a + b) / 2
    N = np.exp(uo)
    ok = (al > 0) & (be > 0)
    N = np.where(ok, N, np.nan)
    return N, C / flops(N)


def exponents(coefs: dict, p: float) -> dict:
    """N_opt ∝ C^a, S_opt ∝ C^b and L* − E ∝ C^−γ for F = k·N^p."""
    al, be = np.asarray(coefs["alpha"], dtype=float), np.asarray(coefs["beta"], dtype=float)
    den = al + p * be
    return {"a_N": be / den, "b_S": al / den, "gamma_L": al * be / den}
