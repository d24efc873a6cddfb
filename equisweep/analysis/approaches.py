"""Approach 1 (compute envelope) and Approach 2 (IsoFLOP profiles) of Hoffmann et al. 2022,
on the training curves of one family.

Curves are (trial key, cumulative FLOPs, loss) rows. Both approaches read a curve's loss at
an intermediate compute as the loss a run of that length would have reached; with a decaying
learning-rate schedule that overstates the loss of a shorter, fully-annealed run, so both are
cross-checks on Approach 3 (which uses final losses only), as in the Chinchilla paper.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ENVELOPE_BINS = 40
ISOFLOP_LEVELS = 8
MIN_SIZES_PER_LEVEL = 3
PARABOLA_HALF_WIDTH = 2


def envelope(flops, loss, n_bins: int = ENVELOPE_BINS) -> tuple[np.ndarray, np.ndarray]:
    """Lower envelope of loss against compute over all curves: the best loss in each
    log-compute bin, then only bins that beat every bin of lower compute (a run with more
    compute can always stop early, so the envelope never rises)."""
    C = np.asarray(flops, dtype=float)
    L = np.asarray(loss, dtype=float)
    ok = np.isfinite(C) & np.isfinite(L) & (C > 0) & (L > 0)
    C, L = C[ok], L[ok]
    if C.size == 0:
        return C, L
    lc = np.log(C)
    if lc.max() == lc.min():
        i = np.argmin(L)
        return C[i : i + 1], L[i : i + 1]
    edges = np.linspace(lc.min(), lc.max(), n_bins + 1)
    b = np.clip(np.searchsorted(edges, lc, side="right") - 1, 0, n_bins - 1)
    out_c, out_l = [], []
    best = np.inf
    for j in range(n_bins):
        m = np.flatnonzero(b == j)
        if m.size == 0:
            continue
        i = m[np.argmin(L[m])]
        if L[i] < best:
            best = L[i]
            out_c.append(C[i])
            out_l.append(L[i])
    return np.array(out_c), np.array(out_l)


@dataclass
class IsoFlop:
    levels: np.ndarray  # compute budgets examined
    profiles: list  # per level: dict(C, N (sizes), L (loss at C), coef (parabola) or None, ...)
    N_opt: np.ndarray  # per level (NaN where the parabola has no interior minimum)
    a: float  # N_opt ∝ C^a
    log_k: float
    n_valid: int
    reason: str | None  # why no exponent could be fitted


def curve_at(flops, loss, C):
    """Loss of one curve at compute C (log-log interpolation); NaN outside the curve."""
    f = np.asarray(flops, dtype=float)
    lo = np.asarray(loss, dtype=float)
    ok = np.isfinite(f) & np.isfinite(lo) & (f > 0) & (lo > 0)
    f, lo = f[ok], lo[ok]
    if f.size == 0:
        return np.full(np.shape(C), np.nan)
    o = np.argsort(f)
    f, lo = np.log(f[o]), np.log(lo[o])
    x = np.log(np.asarray(C, dtype=float))
    v = np.exp(np.interp(x, f, lo))
    return np.where((x >= f[0]) & (x <= f[-1]), v, np.nan)


def isoflop(curves: list[tuple[float, np.ndarray, np.ndarray]], n_levels: int = ISOFLOP_LEVELS):
    """curves: (n_params, flops array, loss array) per trial. Returns IsoFlop."""
    spans = [(N, np.nanmin(f), np.nanmax(f)) for N, f, _ in curves if len(f)]
    if not spans:
        return IsoFlop(np.array([]), [], np.array([]), np.nan, np.nan, 0, "no curves")
    lo = np.log(min(s[1] for s in spans))
    hi = np.log(max(s[2] for s in spans))
    levels = np.exp(np.linspace(lo, hi, n_levels + 2)[1:-1])
    profiles, nopt = [], []
    for C in levels:
        per_size: dict[float, float] = {}
        for N, f, lossv in curves:
            v = float(curve_at(f, lossv, C))
            if np.isfinite(v):
                per_size[N] = min(v, per_size.get(N, np.inf))
        Ns = np.array(sorted(per_size))
        Ls = np.array([per_size[n] for n in Ns])
        prof = {"C": float(C), "N": Ns.tolist(), "L": Ls.tolist(), "coef": None, "N_opt": None,
                "fit_N": None}
        n_opt = np.nan
        if Ns.size >= MIN_SIZES_PER_LEVEL:
            # a parabola in log N only describes the profile near its minimum: fit the best
            # size and up to PARABOLA_HALF_WIDTH neighbours on each side
            i = int(np.argmin(Ls))
            lo_i = max(0, min(i - PARABOLA_HALF_WIDTH, Ns.size - MIN_SIZES_PER_LEVEL))
            hi_i = min(Ns.size, max(i + PARABOLA_HALF_WIDTH + 1, MIN_SIZES_PER_LEVEL))
            u = np.log(Ns[lo_i:hi_i])
            c2, c1, c0 = np.polyfit(u, Ls[lo_i:hi_i], 2)
            prof["coef"] = [float(c2), float(c1), float(c0)]
            prof["fit_N"] = Ns[lo_i:hi_i].tolist()
            if c2 > 0:
                v = -c1 / (2 * c2)
                if u.min() <= v <= u.max():  # only a bracketed minimum is a measurement
                    n_opt = float(np.exp(v))
                    prof["N_opt"] = n_opt
        profiles.append(prof)
        nopt.append(n_opt)
    nopt = np.array(nopt)
    ok = np.isfinite(nopt)
    if ok.sum() < 2:
        n_sized = max((len(p["N"]) for p in profiles), default=0)
        if n_sized < MIN_SIZES_PER_LEVEL:
            reason = (f"need ≥ {MIN_SIZES_PER_LEVEL} distinct N reaching the same compute "
                      f"(have {n_sized})")
        else:
            reason = ("need ≥ 2 compute levels whose IsoFLOP parabola has a minimum inside "
                      "the measured N range")
        return IsoFlop(levels, profiles, nopt, np.nan, np.nan, int(ok.sum()), reason)
    a, log_k = np.polyfit(np.log(levels[ok]), np.log(nopt[ok]), 1)
    return IsoFlop(levels, profiles, nopt, float(a), float(log_k), int(ok.sum()), None)
