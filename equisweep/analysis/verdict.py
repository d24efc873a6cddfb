"""The study's three questions, answered in plain words from fits.json, or "not determined"
with the reason (the report's first section and the console's first lines).

1. Data efficiency: does the equivariant variant reach a lower test loss from the same
   training trajectories than the non-equivariant variants with and without augmentation?
   Measured directly (no fit needed): at each train_trajectories shared by two variants,
   the ratio of their best points' test losses (best by validation loss), with an interval
   from the stored standard errors.
2. Loss vs compute per variant: the compute-optimal frontier of each variant (Approach 3),
   and the loss ratio between variants at equal compute with its bootstrap interval.
3. Compute-optimal allocation: N_opt ∝ C^a per variant with its interval.

Which variant is equivariant is read from the store's `equivariant` column; an older store
that lacks it gets every pair compared in name order, with a note saying so.
"""

from __future__ import annotations

import numpy as np

from equisweep.analysis import validity
from equisweep.analysis.sections import best_per_d

Z95 = 1.959963984540054
QUESTIONS = {
    "data_efficiency": "Data efficiency: does equivariance reach a lower loss from the same "
                       "data, with and without augmentation of the baseline?",
    "compute": "Loss vs compute: how does each variant's loss scale with training compute, "
               "and which reaches the lower loss at equal compute?",
    "allocation": "Compute-optimal allocation: how should a compute budget be split between "
                  "model size and training steps, per variant?",
}


def answers(fits: dict, points) -> dict:
    variants = fits["variants"]
    pairs, known = ordered_pairs(variants)
    unit = fits["compute"]["unit"]
    out = {"equivariance_known": known, "questions": []}
    flags = {info.get("equivariant") for info in variants.values()} - {None}
    if known:
        notes = []
    elif flags:  # the store says; only one side of the pair has finished points yet
        side = "equivariant" if True in flags else "non-equivariant"
        notes = [f"only {side} variants have finished trials so far: no equivariant / "
                 "non-equivariant pair yet (variants are compared in name order)"]
    else:
        notes = ["the store does not record which family is equivariant (no `equivariant` "
                 "column): pairs are compared in name order"]
    noise = fits.get("run_noise") or {}
    sigma = noise["log_sd"] if noise.get("measured") else 0.0
    out["questions"].append(_q(
        "data_efficiency", *_data_efficiency(pairs, points, variants, sigma)))
    out["questions"].append(_q("compute", *_compute(pairs, fits, unit)))
    out["questions"].append(_q("allocation", *_allocation(variants, unit)))
    out["notes"] = notes
    out["baselines"] = _baselines(fits, variants)
    return out


def _q(qid, status, text, details):
    return {"id": qid, "question": QUESTIONS[qid], "status": status, "answer": text,
            "details": details}


def ordered_pairs(variants: dict) -> tuple[list[tuple[str, str]], bool]:
    """(equivariant, non-equivariant) pairs when the store says which is which; else every
    pair in name order. Returns (pairs, whether equivariance was known)."""
    eq = [v for v, info in variants.items() if info.get("equivariant") is True]
    non = [v for v, info in variants.items() if info.get("equivariant") is False]
    if eq and non:
        return [(a, b) for a in eq for b in non], True
    names = sorted(variants)
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]], False


def ratio_interval(a, sa, b, sb, run_noise: float = 0.0):
    """a/b with a 95% interval from independent standard errors (log-normal delta method;
    conservative for paired evaluations on the same windows), plus the run-to-run noise
    (log-sd) of each point when seed replicates measured it. None where an s.e. is missing."""
    r = a / b
    if sa is None or sb is None or not (np.isfinite(sa) and np.isfinite(sb)):
        return r, None
    s = np.sqrt((sa / a) ** 2 + (sb / b) ** 2 + 2 * run_noise**2)
    return r, (r * np.exp(-Z95 * s), r * np.exp(Z95 * s))


def _pct(x: float) -> str:
    x = abs(x)
    return f"{x:.1f}%" if x < 9.95 else f"{x:.0f}%"


def fmt_change(r, ci, missing="no s.e. recorded", than: str = "") -> str:
    """A loss ratio a/b as a reader says it: '15% [12%, 18%] higher' / '6% [3%, 9%] lower'
    (+ `than`), the interval in the same direction; a signed one where it includes no
    difference, which the text then says."""
    up = r >= 1
    word = "higher" if up else "lower"
    s = _pct((r - 1) * 100) + " "
    if ci is None:
        return s + f"{word}{than} ({missing})"
    lo, hi = ((ci[0] - 1) * 100, (ci[1] - 1) * 100) if up else ((1 - ci[1]) * 100,
                                                                (1 - ci[0]) * 100)
    if lo < 0:  # the interval includes equality
        return s + f"[{lo:+.1f}%, {hi:+.1f}%] {word}{than}: not distinguishable from equal"
    return s + f"[{_pct(lo)}, {_pct(hi)}] {word}{than}"


def fmt_ratio(r, ci, missing="no s.e. recorded") -> str:
    return f"{r:.2f}×" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f" ({missing})")


def fmt_block(b: dict, digits=2) -> str:
    if not isinstance(b, dict) or b.get("value") is None:
        return "n/a"
    s = f"{b['value']:.{digits}f}"
    if b.get("ci"):
        s += f" [{b['ci'][0]:.{digits}f}, {b['ci'][1]:.{digits}f}]"
    return s


def _best_by_d(points, variant) -> dict:
    """{D: point} on the variant's data axis (sections.best_per_d: one compute, best per D)."""
    axis = best_per_d(points[points["variant"] == variant])
    return {float(r["D"]): r for _, r in axis.iterrows()}


def _by_length(points, variant) -> dict:
    """{(D, S): point}: the variant's data-axis model (the N of `best_per_d`) at every
    length it was trained for, per train-set size of its data axis, each picked as
    `best_per_d` picks (lowest seed, then lowest validation loss). Loss against passes
    over the train set: does a gap close as epochs grow?"""
    v = points[points["variant"] == variant]
    axis = best_per_d(v)
    if axis.empty:
        return {}
    N, Ds = axis["N"].iloc[0], set(axis["D"].astype(float))
    out = {}
    for S in sorted(v.loc[v["N"] == N, "S"].unique()):
        for _, r in best_per_d(v[(v["N"] == N) & (v["S"] == S)]).iterrows():
            if float(r["D"]) in Ds:
                out[(float(r["D"]), float(S))] = r
    return out


def _gap_by_passes(a, b, points, sigma) -> tuple[list, str | None]:
    """Per shared train-set size, the a/b loss ratio at each shared length, with epochs
    (passes over the train set); and a sentence for the smallest D trained at two lengths."""
    la, lb = _by_length(points, a), _by_length(points, b)
    rows = []
    for D, S in sorted(set(la) & set(lb)):
        ra, rb = la[(D, S)], lb[(D, S)]
        r, ci = ratio_interval(ra["loss"], _se(ra), rb["loss"], _se(rb), sigma)
        rows.append({"D": D, "S": S, "ratio": float(r), "ci": None if ci is None else list(ci),
                     "epochs": _f(ra["epochs"]), "keys": [str(ra["key"]), str(rb["key"])]})
    for D in sorted({r["D"] for r in rows}):
        at = [r for r in rows if r["D"] == D]
        if len(at) < 2 or at[0]["epochs"] is None or at[-1]["epochs"] is None:
            continue
        first, last = at[0], at[-1]
        return rows, (f"with {D:g} trajectories, {a}'s loss is "
                      f"{fmt_ratio(first['ratio'], first['ci'])} {b}'s at "
                      f"{first['epochs']:.3g} epochs and {fmt_ratio(last['ratio'], last['ci'])}"
                      f" at {last['epochs']:.3g}")
    return rows, None


def _data_efficiency(pairs, points, variants, sigma=0.0):
    if not pairs:
        return "not determined", "not determined: it needs two variants", []
    details, parts = [], []
    for a, b in pairs:
        ba, bb = _best_by_d(points, a), _best_by_d(points, b)
        shared = sorted(set(ba) & set(bb))
        if not shared:
            parts.append(f"{a} vs {b}: no train_trajectories in common")
            continue
        rows = []
        for d in shared:
            ra, rb = ba[d], bb[d]
            r, ci = ratio_interval(ra["loss"], _se(ra), rb["loss"], _se(rb), sigma)
            rows.append({"D": d, "ratio": float(r), "ci": None if ci is None else list(ci),
                         "keys": [str(ra["key"]), str(rb["key"])],
                         "epochs": [_f(ra["epochs"]), _f(rb["epochs"])]})
        by_passes, passes_text = _gap_by_passes(a, b, points, sigma)
        details.append({"pair": [a, b], "per_D": rows, "by_passes": by_passes})
        lo, hi = rows[0], rows[-1]
        than = f" than {b}'s"
        s = (f"with {lo['D']:g} training trajectories {a}'s test loss is "
             f"{fmt_change(lo['ratio'], lo['ci'], than=than)}")
        if len(rows) > 1:
            s += f", with {hi['D']:g} {fmt_change(hi['ratio'], hi['ci'])}"
        if hi["epochs"][1] is not None:
            s += f" ({b} at {hi['epochs'][1]:.3g} epochs)"
        if passes_text:
            s += f"; {passes_text}"
        parts.append(s)
    if not details:
        return "not determined", "not determined: " + "; ".join(parts), []
    fitted = [f"{v}: L − E ∝ D^−β, β = {fmt_block(info['data_efficiency']['coefficients']['beta'])}"
              for v, info in variants.items() if validity.usable(info["data_efficiency"])]
    text = "; ".join(parts) + "."
    non = [info for info in variants.values() if info.get("equivariant") is False]
    if non:
        augs = {bool(info.get("augment")) for info in non}
        for flag, word in ((False, "without"), (True, "with")):
            if flag not in augs:
                text += f" This sweep has no non-equivariant variant trained {word} augmentation."
    text += (" Fitted: " + "; ".join(fitted) + "." if fitted else
             " No L(D) law is determined (see the data-efficiency fits below).")
    return "answered", text[0].upper() + text[1:], details


def _compute(pairs, fits, unit):
    variants = fits["variants"]
    comps = {tuple(c["pair"]): c for c in fits["comparisons"]}
    parts, details, ok = [], [], False
    for a, b in pairs:
        c = comps.get((a, b)) or comps.get((b, a))
        if c is None:
            continue
        flip = tuple(c["pair"]) != (a, b)
        if not validity.usable(c):
            parts.append(f"{a} vs {b}: not determined: {c['reason']}")
            continue
        ok = True
        r = c["ratio"]
        i = len(r["value"]) // 2
        none = [None] * (i + 1)
        v, lo, hi = r["value"][i], (r["lo"] or none)[i], (r["hi"] or none)[i]
        if flip and v:
            v, lo, hi = 1 / v, (1 / hi if hi else None), (1 / lo if lo else None)
        ci = (lo, hi) if lo is not None and hi is not None else None
        lo_c, hi_c = c["compute_range"]
        what = "training wall-clock" if unit == "s" else "training compute"
        than = f" than {b}'s"
        s = (f"at equal {what} {a}'s loss is "
             f"{fmt_change(v, ci, 'no bootstrap interval', than=than)} "
             f"(at {np.sqrt(lo_c * hi_c):.2g} {unit}; over {lo_c:.2g}–{hi_c:.2g} {unit}, "
             f"{c['range_kind']})")
        if c["status"] == "weak":
            s += " [weak fit]"
        parts.append(s + "; " + c["crossover"]["statement"])
        details.append({"pair": [a, b], "ratio": v, "ci": None if ci is None else list(ci),
                        "at": float(np.sqrt(lo_c * hi_c)), "status": c["status"]})
    gam, undet = [], []
    for name, info in variants.items():
        a3 = info["approach3"]
        if validity.usable(a3):
            gam.append(f"{name}: L* − E ∝ C^−γ, γ = "
                       f"{fmt_block(a3['exponents']['L* - E ~ C^-gamma'])}"
                       + (" [weak fit]" if a3["status"] == "weak" else ""))
        else:
            undet.append(f"{name}: {first_reason(a3)}")
    if undet:
        gam.append("Approach 3 not determined for " + "; ".join(undet))
    text = "; ".join(p for p in parts if "not determined" not in p or not undet)
    text = (text + ". " if text else "") + "Per variant: " + "; ".join(gam) + "."
    if not ok:
        text = "Not determined from fits: " + ("; ".join(undet) + "." if undet else text)
    measured, any_measured = _by_cost(fits.get("cost_conventions"))
    if measured:
        text += (" Measured at equal cost, each variant's best tuned point within the budget "
                 "(loss of the first variant vs the second): " + measured)
    answered = ok or any_measured
    return ("answered" if answered else "not determined"), text[0].upper() + text[1:], details


def first_reason(block) -> str:
    """The first reason of a block's worst severity (the rest are listed under Fits)."""
    worst = [d["message"] for d in block.get("diagnostics", [])
             if d["severity"] == block.get("status")]
    more = len(worst) - 1
    return (worst[0] + (f" (+{more} more reason{'s' * (more > 1)} under Fits)" if more > 0
                        else "")) if worst else str(block.get("reason"))


def _by_cost(block) -> tuple[str, bool]:
    """One sentence per cost convention: the pair's loss change at its smallest and largest
    shared budget (costs.py); conventions the store lacks say so."""
    if not block:
        return "", False
    parts, any_ok = [], False
    for info in block["conventions"].values():
        if info["status"] == "not available":
            parts.append(f"{info['short']}: not available ({info['reason']})")
            continue
        pairs = []
        for p in info["pairs"]:
            rows = p["budgets"]
            if not rows:
                pairs.append(f"{' vs '.join(p['pair'])}: {p.get('why', '-')}")
                continue
            any_ok = True
            ends = [rows[0]] if len(rows) == 1 else [rows[0], rows[-1]]
            pairs.append(f"{p['pair'][0]} vs {p['pair'][1]}: " + ", ".join(
                f"{r['change']} within {r['C']:.2g} {info['unit']}" for r in ends))
        parts.append(f"{info['short']}: " + "; ".join(pairs))
    return ". ".join(parts) + " (all budgets: the table 'Loss at equal cost').", any_ok


def _allocation(variants, unit):
    parts, details = [], []
    for name, info in variants.items():
        a3 = info["approach3"]
        if not validity.usable(a3):
            parts.append(f"{name}: not determined ({first_reason(a3)})")
            continue
        a, b = a3["exponents"]["N_opt ~ C^a"], a3["exponents"]["S_opt ~ C^b"]
        s = (f"{name}: N_opt ∝ C^{fmt_block(a)}, S_opt ∝ C^{fmt_block(b)}"
             + (" [weak fit]" if a3["status"] == "weak" else ""))
        a2 = info["approach2"]
        if validity.usable(a2):
            s += f" (IsoFLOP cross-check: a = {fmt_block(a2['a'])})"
        parts.append(s)
        details.append({"variant": name, "a": a, "b": b, "status": a3["status"]})
    if len(details) >= 2:
        cis = [d["a"].get("ci") for d in details]
        if all(cis):
            overlap = max(c[0] for c in cis) <= min(c[1] for c in cis)
            parts.append("the intervals of a overlap: these data do not tell the allocations "
                         "apart" if overlap else "the intervals of a do not overlap: the "
                         "allocations differ")
    ok = bool(details)
    text = "Per variant: " + "; ".join(parts) + "."
    if not ok:
        text = ("Not determined: Approach 3 (which gives N_opt and S_opt) is undetermined for "
                "every variant (see the previous answer)." if len(parts) > 1 else
                "Not determined: " + "; ".join(parts) + ".")
    return ("answered" if ok else "not determined"), text[0].upper() + text[1:], details


def _baselines(fits, variants) -> str | None:
    test = [b for b in fits.get("baselines", []) if b.get("split") == "test"]
    if not test:
        return None
    cv = next((b for b in test if b["baseline"] == "constant_velocity"), None)
    base = ", ".join(f"{b['baseline']} {b['loss']:.3g}"
                     + (f" ± {b['loss_se']:.2g}" if _finite(b.get("loss_se")) else "")
                     for b in test)
    s = f"Zero-parameter baselines on the test windows: {base}."
    if cv is not None:
        best = []
        for name, info in variants.items():
            r, ci = ratio_interval(info["best"]["loss"], info["best"]["loss_se"], cv["loss"],
                                   cv.get("loss_se") if _finite(cv.get("loss_se")) else None)
            best.append(f"{name} {fmt_ratio(r, ci)}")
        s += " Best point per variant relative to constant velocity: " + ", ".join(best) + "."
    return s


def _se(row):
    v = float(row["loss_se"])
    return v if np.isfinite(v) else None


def _f(v):
    v = float(v)
    return v if np.isfinite(v) else None


def _finite(v) -> bool:
    return v is not None and np.isfinite(float(v))
