"""Run-to-run noise: how much the final loss of the same model at the same (N, S, D) moves
from one training seed to another, measured from the sweep's seed replicates.

The test-set standard error (~1% on the CPU study) says how well one trained model's loss is
known; the loss of a *configuration* also carries the noise of initialisation and data
order (~5-6% there, study-facts §10). Intervals that omit it are too narrow, so every
interval says whether it includes it, and a sweep without replicates is told how to measure
it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from equisweep.analysis import validity

REPLICATE_KEYS = ("variant", "size", "S", "D")  # a cell without its seed
HOW_TO_MEASURE = (
    "add a second seed to the grid (grid: {seed: [0, 1]}) for at least a few "
    "cells: the spread of their final losses is the noise"
)


def run_noise(points: pd.DataFrame) -> dict:
    """Pooled log-sd of the loss over groups of tuned points that differ only in seed.

    {"log_sd", "n_groups", "n_points", "measured", "statement"}; without replicates log_sd is
    validity.ASSUMED_RUN_NOISE and "measured" is False."""
    groups = []
    if len(points) and "seed" in points.columns:
        key = points[list(REPLICATE_KEYS)].astype(str).agg("|".join, axis=1)
        seeds = points["seed"].fillna(-1)
        for _, idx in points.groupby(key).groups.items():
            sub = points.loc[idx]
            if seeds.loc[idx].nunique() >= 2:
                groups.append(np.log(sub["loss"].to_numpy(float)))
    dof = sum(len(g) - 1 for g in groups)
    if dof >= 1:
        ss = sum(float(np.sum((g - g.mean()) ** 2)) for g in groups)
        sd = float(np.sqrt(ss / dof))
        return {
            "log_sd": sd,
            "n_groups": len(groups),
            "n_points": int(sum(map(len, groups))),
            "measured": True,
            "statement": f"run-to-run noise {sd:.3f} (log-sd) measured from seed replicates "
            f"({len(groups)} groups, {dof} degrees of freedom); intervals "
            "include it",
        }
    return {
        "log_sd": validity.ASSUMED_RUN_NOISE,
        "n_groups": 0,
        "n_points": 0,
        "measured": False,
        "statement": "the sweep has no seed replicates, so intervals omit run-to-run noise "
        "(the held-out check assumes "
        f"{validity.ASSUMED_RUN_NOISE:g}, Choshen et al. 2025); to measure "
        "it, " + HOW_TO_MEASURE,
    }


def source(noise: dict) -> str:
    return "measured from seed replicates" if noise["measured"] else "assumed: no seed replicates"
