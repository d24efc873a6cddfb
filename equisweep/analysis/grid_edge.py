"""Tuning honesty: a cell whose tuned point took the smallest or largest value of a
hyperparameter that its search tried may have its optimum outside the range searched.

A hyperparameter is "searched" in a cell when the cell's candidate trials (tuned.select)
tried ≥ 2 distinct values of it; the flag compares the winner's value with the smallest and
largest tried. (The CPU study's GATr took the top learning rate in 22 of 25 cells.)
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd


def hparams_by_key(final: pd.DataFrame) -> dict[str, dict]:
    """key -> {name: numeric value} from the `hp_<name>` columns, else the hparams JSON."""
    hp_cols = [c for c in final.columns if c.startswith("hp_")]
    out = {}
    for i, key in enumerate(final["key"].astype(str)):
        row = {}
        if hp_cols:
            for c in hp_cols:
                v = final[c].iloc[i]
                if (
                    isinstance(v, (int, float, np.integer, np.floating))
                    and not isinstance(v, bool)
                    and np.isfinite(v)
                ):
                    row[c[3:]] = float(v)
        elif "hparams" in final.columns:
            try:
                blob = json.loads(final["hparams"].iloc[i] or "{}")
            except (TypeError, ValueError):
                blob = {}
            row = {
                k: float(v)
                for k, v in (blob or {}).items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
        out[key] = row
    return out


def flags(records: list[dict], hp: dict[str, dict]) -> dict[str, list[dict]]:
    """winner key -> [{"param", "value", "edge" (bottom|top), "tried": [lo, hi], "n_tried"}]
    for every searched hyperparameter at an edge; cells with no flag are left out."""
    out = {}
    for r in records:
        win = hp.get(r["key"], {})
        cand = [hp.get(k, {}) for k in r.get("candidates", [])]
        found = []
        for name, v in sorted(win.items()):
            tried = sorted({c[name] for c in cand if name in c})
            if len(tried) < 2:
                continue
            if v <= tried[0] or v >= tried[-1]:
                found.append(
                    {
                        "param": name,
                        "value": v,
                        "edge": "bottom" if v <= tried[0] else "top",
                        "tried": [tried[0], tried[-1]],
                        "n_tried": len(tried),
                    }
                )
        if found:
            out[r["key"]] = found
    return out


def text(flag: list[dict]) -> str:
    """'lr=0.012 (top of 0.003-0.012)' for a cell's flags."""
    return "; ".join(
        f"{f['param']}={f['value']:.3g} ({f['edge']} of {f['tried'][0]:.3g}–{f['tried'][1]:.3g})"
        for f in flag
    )


def summary(records: list[dict], flagged: dict) -> dict:
    """{"n_cells", "n_at_edge", "by_variant": {variant: {"n_cells", "top", "bottom"}}, ...}"""
    by = {}
    for r in records:
        b = by.setdefault(r["variant"], {"n_cells": 0, "at_edge": 0, "top": 0, "bottom": 0})
        b["n_cells"] += 1
        f = flagged.get(r["key"])
        if f:
            b["at_edge"] += 1
            for e in {x["edge"] for x in f}:
                b[e] += 1
    return {
        "n_cells": len(records),
        "n_at_edge": sum(1 for r in records if r["key"] in flagged),
        "by_variant": by,
        "rule": "a cell's tuned point took the smallest or largest value its candidates "
        "tried of a hyperparameter with ≥ 2 values tried",
    }
