"""Question 2 under every cost convention the store can give, side by side.

"Who is ahead at equal compute" depends on what compute means: GATr performs ~9.7× the
transformer's FLOPs per parameter as counted, ~6.2× under GATr v1.4's nominal count, and the
two tie at equal parameters and steps (DESIGN §5). Per trial:

* counted: training FLOPs as the trainer counted them (forward + backward of every matmul);
* 6·N·samples: the 6·N·tokens rule with tokens = samples × T̄, T̄ the task's mean tokens per
  scene — a constant shared by every trial of one dataset, so the ordering and the ratios at
  equal cost do not depend on it and it is left out of the axis;
* wall-clock: measured training seconds (on the machine the sweep ran on, under its load);
* nominal: GATr v1.4's count (models/nominal.py: 6 FLOPs per linear-layer weight element
  per token, a multivector channel pair as a dense 16×16 map; 6N per token for the
  transformer), from the trial's stored `nominal_flops_per_step`, or computed from its
  family, size and config for stores written before that column.

The answer at a budget C is measured, not fitted: each variant's best tuned point (lowest
test loss) among its points that cost at most C, and the ratio of the two losses with an
interval from their test standard errors (plus the run-to-run noise when seed replicates
measured it).
"""

from __future__ import annotations

import numpy as np

from equisweep.analysis.verdict import Z95, fmt_change

N_BUDGETS = 4
CONVENTIONS = {  # name: (label, unit, short label for the answers' text)
    "counted": ("training FLOPs as counted", "FLOPs", "counted FLOPs"),
    "nominal": ("GATr v1.4 nominal FLOPs (transformer 6N per token)", "FLOPs",
                "GATr-v1.4 nominal FLOPs"),
    "6N_samples": ("6·N·samples (6·N·tokens without the shared tokens-per-scene factor)",
                   "(6·N·samples)", "6·N·samples"),
    "wall": ("measured training wall-clock", "s", "wall-clock"),
}


_MISSING = {
    "nominal": "no family of these trials declares a nominal count (models/nominal.py), or "
    "their stored config lacks the task or batch size",
    "wall": "no trial recorded wall_s",
}


def cost_of(points, convention: str) -> np.ndarray | None:
    """Per-point training cost under `convention` (None: the store does not record it)."""
    if convention == "counted":
        return points["C_flops"].to_numpy(float)
    if convention == "6N_samples":
        return 6.0 * points["N"].to_numpy(float) * points["samples"].to_numpy(float)
    if convention == "wall":
        return points["wall_s"].to_numpy(float)
    if convention == "nominal" and "C_nominal" in points.columns:
        return points["C_nominal"].to_numpy(float)
    return None


def per_point(points) -> dict:
    """{key: {convention: the point's training cost, None where not recorded}}: each fitted
    point's cost under every convention, side by side (fits.json `points.cells[].cost`)."""
    out = {str(k): {} for k in points["key"]}
    for name in CONVENTIONS:
        c = cost_of(points, name)
        for k, v in zip(points["key"], c if c is not None else [None] * len(points)):
            out[str(k)][name] = float(v) if v is not None and np.isfinite(v) else None
    return out


def per_parameter(points) -> dict:
    """Per variant, the median cost of one parameter seeing one training sample (scene) under
    each convention that is not a constant: how far apart the conventions put the families
    (6·N·samples is 6 for every family by construction)."""
    out = {}
    for variant, g in points.groupby("variant", sort=True):
        ns = g["N"].to_numpy(float) * g["samples"].to_numpy(float)
        row = {}
        for name in ("counted", "nominal", "wall"):
            c = cost_of(g, name)
            r = c / ns if c is not None else np.full(len(g), np.nan)
            r = r[np.isfinite(r) & (r > 0)]
            row[name] = float(np.median(r)) if r.size else None
        out[str(variant)] = row
    return out


def best_within(loss, cost, budget):
    """Index of the lowest loss among points with cost ≤ budget (None if none)."""
    ok = np.flatnonzero(np.isfinite(cost) & (cost <= budget * (1 + 1e-9)) & np.isfinite(loss))
    return None if ok.size == 0 else int(ok[np.argmin(loss[ok])])


def compute_axis(points):
    """Each variant's points at its largest train_trajectories (the compute axis, as
    Approach 3 uses them)."""
    keep = np.zeros(len(points), bool)
    for _, g in points.groupby("variant"):
        d = g["D"].to_numpy(float)
        top = np.nanmax(d) if np.isfinite(d).any() else np.nan
        keep[points.index.get_indexer(g.index[(d == top) | ~np.isfinite(top)])] = True
    return points[keep]


def question2(points, pairs, noise: dict) -> dict:
    """{"conventions": {name: {"label", "unit", "status", "pairs": [...]}}, "interval",
    "per_parameter": {variant: {convention: median cost per parameter per sample}}}."""
    points = compute_axis(points)
    sigma = noise["log_sd"] if noise.get("measured") else 0.0
    out = {
        "rule": "per budget C: each variant's lowest tuned test loss among its points "
        "costing ≤ C; the ratio of the two",
        "interval": "95%, from the two points' test standard errors"
        + (
            f" and the run-to-run noise {sigma:.3f} (log-sd, seed replicates)"
            if sigma
            else "; run-to-run noise omitted (no seed replicates)"
        ),
        "conventions": {},
        "per_parameter": per_parameter(points),
    }
    for name, (label, unit, short) in CONVENTIONS.items():
        block = {"label": label, "short": short, "unit": unit, "pairs": []}
        costs = cost_of(points, name)
        if costs is None or not np.isfinite(costs).any():
            block["status"] = "not available"
            block["reason"] = ("no trial has it: " + _MISSING[name]) if name in _MISSING else (
                "the store does not record this cost for its trials")
            out["conventions"][name] = block
            continue
        for a, b in pairs:
            ia = (points["variant"] == a).to_numpy()
            ib = (points["variant"] == b).to_numpy()
            ca, cb = costs[ia], costs[ib]
            ca, cb = ca[np.isfinite(ca)], cb[np.isfinite(cb)]
            if not ca.size or not cb.size:
                continue
            lo, hi = max(ca.min(), cb.min()), min(ca.max(), cb.max())
            if not hi > lo:
                block["pairs"].append(
                    {"pair": [a, b], "budgets": [], "why": "the cost ranges do not overlap"}
                )
                continue
            rows = []
            for C in np.geomspace(lo, hi, N_BUDGETS):
                r = _ratio_at(points, costs, a, b, C, sigma)
                if r is not None:
                    rows.append(r)
            block["pairs"].append({"pair": [a, b], "budgets": rows})
        block["status"] = "answered" if any(p["budgets"] for p in block["pairs"]) else (
            "not determined"
        )
        out["conventions"][name] = block
    return out


def _ratio_at(points, costs, a, b, C, sigma):
    loss = points["loss"].to_numpy(float)
    se = points["loss_se"].to_numpy(float)
    idx = {}
    for v in (a, b):
        m = np.flatnonzero((points["variant"] == v).to_numpy())
        i = best_within(loss[m], costs[m], C)
        if i is None:
            return None
        idx[v] = m[i]
    la, lb = loss[idx[a]], loss[idx[b]]
    than = f" than {b}'s"
    r = la / lb
    rel = [se[idx[v]] / loss[idx[v]] for v in (a, b)]
    ci = None
    if all(np.isfinite(rel)):
        s = float(np.sqrt(rel[0] ** 2 + rel[1] ** 2 + 2 * sigma**2))
        ci = [float(r * np.exp(-Z95 * s)), float(r * np.exp(Z95 * s))]
    return {
        "C": float(C),
        "ratio": float(r),
        "ci": ci,
        "keys": [str(points["key"].iloc[idx[a]]), str(points["key"].iloc[idx[b]])],
        "text": f"{a}'s loss is {fmt_change(r, ci, than=than)}",
        "change": fmt_change(r, ci),
    }
