"""Family comparison at equal compute: the ratio of compute-optimal losses L*_a(C)/L*_b(C)
with its bootstrap interval, and where (if anywhere) the frontiers cross.

Computed only when both variants' Approach 3 fits are ok or weak (validity.py); otherwise the
comparison block says "not determined" and why.
"""

from __future__ import annotations

import numpy as np

from equisweep.analysis import frontier, validity
from equisweep.analysis.bootstrap import CI_LEVEL
from equisweep.analysis.scaling import band, block
from equisweep.analysis.sections import c_grid

CROSSOVER_EXTRAPOLATE = 1e4  # also look this far past the measured compute, flagged


def not_determined(a: str, b: str, variants: dict) -> str | None:
    """Why the pair cannot be compared (None: it can)."""
    why = [f"{v}: Approach 3 is {variants[v]['approach3']['status']} "
           f"({variants[v]['approach3'].get('reason')})"
           for v in (a, b) if not validity.usable(variants[v]["approach3"])]
    return "; ".join(why) or None


def compare(a: str, b: str, variants: dict, reps: dict, unit: str = "FLOPs") -> dict:
    why = not_determined(a, b, variants)
    if why is not None:
        return {"pair": [a, b], "status": "undetermined", "reason": why,
                "not_determined": f"no loss ratio or crossover: {why}"}
    st = {variants[v]["approach3"]["status"] for v in (a, b)}
    ra, rb = reps[a], reps[b]
    lo = max(ra["range"][0], rb["range"][0])
    hi = min(ra["range"][1], rb["range"][1])
    overlap = hi > lo
    if not overlap:
        lo, hi = min(ra["range"][0], rb["range"][0]), max(ra["range"][1], rb["range"][1])
    Cg = c_grid(lo, hi)
    la = _lopt(ra, ra["theta"], Cg)
    lb = _lopt(rb, rb["theta"], Cg)
    n = min(len(ra["boot_theta"]), len(rb["boot_theta"]))
    ratio_r = None
    if n >= 2:
        # the two variants' resamples are independent draws: pairing them by index is one
        # draw of the pair
        ratio_r = _lopt(ra, ra["boot_theta"][:n], Cg) / _lopt(rb, rb["boot_theta"][:n], Cg)
    out = {
        "pair": [a, b],
        "status": "weak" if "weak" in st else "ok",
        "reason": "a fit it rests on is weak" if "weak" in st else None,
        "unit": unit,
        "ratio_definition": f"L*_{a}(C) / L*_{b}(C) (below 1: {a} reaches lower loss)",
        "compute_range": [lo, hi],
        "range_kind": "overlap of measured compute" if overlap
        else "union of measured compute (ranges do not overlap: partly extrapolated)",
        "C": Cg.tolist(),
        "ratio": band(la / lb, ratio_r),
    }
    out["crossover"] = crossover(ra, rb, lo, hi, n, unit)
    diff_r = None
    if n >= 2 and ra.get("a_samples") is not None and rb.get("a_samples") is not None:
        diff_r = np.asarray(ra["a_samples"][:n]) - np.asarray(rb["a_samples"][:n])
    out["allocation_difference"] = {
        "definition": f"a_{a} − a_{b} (N_opt ∝ C^a), each from its primary form",
        **block(ra["a"] - rb["a"], diff_r)}
    return out


def _lopt(rep, theta, C):
    return frontier.allocation_form(rep["form"], theta, rep["flops"], C)["L_opt"]


def crossover(ra, rb, lo, hi, n, unit="FLOPs") -> dict:
    """Where L*_a(C) = L*_b(C): within the measured range, else up to CROSSOVER_EXTRAPOLATE
    times its top (flagged as an extrapolation), with its bootstrap interval."""
    far = hi * CROSSOVER_EXTRAPOLATE
    Cg = np.logspace(np.log10(lo), np.log10(far), 400)

    def root(ca, cb):
        with np.errstate(all="ignore"):
            d = np.log(_lopt(ra, ca, Cg)) - np.log(_lopt(rb, cb, Cg))
        d = np.atleast_2d(d)
        out = np.full(d.shape[0], np.nan)
        for i, row in enumerate(d):
            s = np.flatnonzero(np.isfinite(row[:-1]) & np.isfinite(row[1:])
                               & (np.sign(row[:-1]) * np.sign(row[1:]) < 0))
            if s.size:
                j = s[0]
                x0, x1 = np.log(Cg[j]), np.log(Cg[j + 1])
                out[i] = np.exp(x0 - row[j] * (x1 - x0) / (row[j + 1] - row[j]))
        return out

    c0 = float(root(ra["theta"], rb["theta"])[0])
    res = {"search_range": [lo, far], "measured_top": hi}
    if n >= 2:
        r = root(ra["boot_theta"][:n], rb["boot_theta"][:n])
        res["fraction_of_resamples_crossing"] = float(np.mean(np.isfinite(r)))
        if np.isfinite(r).sum() >= 2:
            q = (1 - CI_LEVEL) / 2
            res["ci"] = [float(v) for v in np.quantile(r[np.isfinite(r)], [q, 1 - q])]
    if np.isfinite(c0):
        res["C"] = c0
        res["extrapolated"] = bool(c0 > hi)
        where = ("beyond the measured range (extrapolation)" if c0 > hi
                 else "within the measured range")
        res["statement"] = f"the frontiers cross at C ≈ {c0:.3g} {unit}, {where}"
    else:
        res["C"] = None
        res["statement"] = (f"no crossover between {lo:.3g} and {far:.3g} {unit} (the measured "
                            f"range and {CROSSOVER_EXTRAPOLATE:.0e}x beyond it)")
    return res
