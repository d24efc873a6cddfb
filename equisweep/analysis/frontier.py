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

The FLOPs exponent p (which the compute-optimal exponents a, b depend on) is fitted by
least squares over the family's *ladder*: sizes whose FLOPs per parameter lie more than
OFF_LADDER× from the family's median are left out of it (and named in fits.json). One such
size otherwise dominates the line: the CPU study's 804-parameter GATr with 4 scalar
channels costs 294 FLOPs per parameter per token against 67-90 for the other sizes, and
moved GATr's a from ~0.75 to 0.91. F itself (the allocation's cost) still uses every size.

Any law form of analysis/laws/ gets its allocation from `allocation_form` (numerically, from
the form's own prediction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POWER_TOLERANCE = 0.05
OFF_LADDER = 2.0  # FLOPs per parameter this far from the family's median: off the ladder


@dataclass
class FlopsModel:
    kind: str  # "power" or "interp"
    k: float = float("nan")
    p: float = float("nan")
    log_n: np.ndarray | None = None  # knots for "interp"
    log_f: np.ndarray | None = None
    max_rel_error: float = float("nan")  # of the power fit over the trials
    n_sizes: int = 0
    off_ladder: list | None = None  # sizes left out of p (FLOPs per parameter off the ladder)

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
                p=self.p,
            )
        d["exponent_rule"] = (f"least squares in log-log over the sizes whose FLOPs per "
                              f"parameter are within {OFF_LADDER:g}x of the family's median")
        d["off_ladder"] = list(self.off_ladder or [])
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
    ladder = on_ladder(uN, uF)
    p, logk = np.polyfit(np.log(uN[ladder]), np.log(uF[ladder]), 1)
    pred = np.exp(logk) * uN**p
    err = float(np.max(np.abs(pred / uF - 1)))
    off = [float(n) for n in uN[~ladder]]
    if force == "power" or (force is None and err <= POWER_TOLERANCE):
        return FlopsModel("power", k=float(np.exp(logk)), p=float(p), max_rel_error=err,
                          n_sizes=int(uN.size), off_ladder=off)
    return FlopsModel("interp", k=float(np.exp(logk)), p=float(p), log_n=np.log(uN),
                      log_f=np.log(uF), max_rel_error=err, n_sizes=int(uN.size),
                      off_ladder=off)


def on_ladder(N, F) -> np.ndarray:
    """Sizes whose FLOPs per parameter are within OFF_LADDER× of the family's median (all of
    them when fewer than two would remain)."""
    r = np.log(np.asarray(F, float) / np.asarray(N, float))
    keep = np.abs(r - np.median(r)) <= np.log(OFF_LADDER)
    return keep if keep.sum() >= 2 else np.ones_like(keep)


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


def allocation_form(form, theta, flops: FlopsModel, C, n_grid=241, n_refine=40) -> dict:
    """N_opt, S_opt, L* = min_N L(N, C/F(N)) for any law form (laws/), raw theta (P,) or
    bootstrap replicates (R, P) -> arrays (nC,) or (R, nC). Dense grid in log N around the
    measured sizes, then golden section; the answer is NaN where the minimum sits on the
    search edge (no interior optimum: N_opt ran off)."""
    C = np.asarray(C, dtype=float)
    th = np.atleast_2d(np.asarray(theta, dtype=float))
    lo = (flops.log_n[0] if flops.log_n is not None else 0.0) - 12.0
    hi = (flops.log_n[-1] if flops.log_n is not None else 20.0) + 12.0
    u = np.linspace(lo, hi, n_grid)
    out = {k: np.full((len(th), C.size), np.nan) for k in ("N_opt", "S_opt", "L_opt")}

    def loss(t, uu):  # uu (nC,) or (nC, G) log N
        N = np.exp(uu)
        with np.errstate(all="ignore"):
            S = C.reshape((-1,) + (1,) * (np.ndim(uu) - 1)) / flops(N)
            return form.predict(t, N, S)

    for r, t in enumerate(th):
        if not np.all(np.isfinite(t)):
            continue
        vals = loss(t, np.broadcast_to(u, (C.size, n_grid)))
        vals = np.where(np.isfinite(vals), vals, np.inf)
        i = np.argmin(vals, axis=1)
        interior = (i > 0) & (i < n_grid - 1) & np.isfinite(vals[np.arange(C.size), i])
        i = np.clip(i, 1, n_grid - 2)
        a, b = u[i - 1], u[i + 1]
        g = (np.sqrt(5) - 1) / 2
        for _ in range(n_refine):
            c, d = b - g * (b - a), a + g * (b - a)
            left = loss(t, c) < loss(t, d)
            b = np.where(left, d, b)
            a = np.where(left, a, c)
        uo = np.where(interior, (a + b) / 2, np.nan)
        N = np.exp(uo)
        out["N_opt"][r] = N
        out["S_opt"][r] = C / flops(N)
        out["L_opt"][r] = np.where(interior, loss(t, uo), np.nan)
    if np.ndim(theta) == 1:
        out = {k: v[0] for k, v in out.items()}
    return out


def exponents(coefs: dict, p: float) -> dict:
    """N_opt ∝ C^a, S_opt ∝ C^b and L* − E ∝ C^−γ for F = k·N^p.

    The same for every form of laws/: at the optimum the N- and S-terms keep a fixed ratio
    (for the interaction form, (A/N^α)^(1/β) ∝ (B/S^β)^(1/β), as in the additive one), so
    N^α ∝ S^β with S = C/(k N^p)."""
    al, be = np.asarray(coefs["alpha"], dtype=float), np.asarray(coefs["beta"], dtype=float)
    with np.errstate(all="ignore"):
        den = al + p * be
        return {"a_N": be / den, "b_S": al / den, "gamma_L": al * be / den,
                "alpha/beta": al / be}
