"""Tuned points: one point per grid cell, the cell's best trial by final validation loss.

A cell is (family, size, steps, train_trajectories, augment, seed) on one dataset and
training setup (its stored `cell_key`, DESIGN §6); `search`
draws several hyperparameter samples inside it. A scaling law describes how the *tuned*
loss moves with N and S, so every fit takes one trial per cell: the one with the lowest
final validation loss, and fits its test loss. Selecting on validation and reporting test
keeps the choice from peeking at the number that is fitted. `--points all` pools every
sample instead (the earlier behaviour).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from equisweep.analysis.data import CELL_COLUMNS

POINT_MODES = ("tuned", "all")


# What else makes a cell one cell: the stored cell key (grid point, task and training
# hashed) and the dataset, so a resubmitted sweep whose task or training changed never has
# two datasets' trials compete in one cell. Rows written before the cell key was stored
# (or frames without these columns) group by the grid columns and the dataset alone.
CELL_IDENTITY = ("cell_key", "dataset")


def cell_frame(final: pd.DataFrame) -> pd.DataFrame:
    """The cell columns of `final`, with NaN seeds spelled the same way (groupby drops NaN),
    then the cell key and dataset ("" where unknown)."""
    cells = final[list(CELL_COLUMNS)].copy()
    cells["seed"] = cells["seed"].fillna(-1)
    cells["size"] = cells["size"].astype(str)
    for col in CELL_IDENTITY:
        cells[col] = final[col].fillna("").astype(str) if col in final.columns else ""
    return cells


def select(final: pd.DataFrame, mode: str = "tuned") -> tuple[pd.DataFrame, list[dict]]:
    """(rows to fit, one record per cell saying which trial stands for it).

    Within a cell the winner is the lowest finite final val_loss; trials without one rank
    after every trial with one (a cell with no validation loss at all falls back to its
    lowest fitted loss, and its record says so); ties go to the smaller key, so the choice
    never depends on row order."""
    if mode not in POINT_MODES:
        raise ValueError(f"points mode {mode!r} is not one of {POINT_MODES}")
    if final.empty:
        return final.copy(), []
    cells = cell_frame(final)
    work = final.assign(_cell=pd.MultiIndex.from_frame(cells).to_flat_index())
    val = work["val_loss"].to_numpy(float)
    has_val = np.isfinite(val)
    work = work.assign(_rank0=np.where(has_val, 0, 1),
                       _rank1=np.where(has_val, val, work["loss"].to_numpy(float)))
    work = work.sort_values(["_rank0", "_rank1", "key"], kind="stable")
    records, keep = [], []
    for cell, g in work.groupby("_cell", sort=True):
        best = g.iloc[0]
        keep.append(best.name)
        plain = _plain(cell)
        records.append({
            "cell": dict(zip(CELL_COLUMNS, plain)),
            **{col: (v or None) for col, v in zip(CELL_IDENTITY, plain[len(CELL_COLUMNS):])},
            "key": str(best["key"]),
            "variant": str(best["variant"]),
            "selected_by": "val_loss" if best["_rank0"] == 0 else "loss (no val_loss recorded)",
            "val_loss": _num(best["val_loss"]),
            "loss": _num(best["loss"]),
            "n_candidates": int(len(g)),
            "candidates": sorted(str(k) for k in g["key"]),
        })
    records.sort(key=lambda r: r["key"])
    if mode == "all":
        return final.copy(), records
    return final.loc[sorted(keep)].copy(), records


def _plain(cell) -> list:
    out = []
    for v in cell:
        if isinstance(v, (np.bool_, bool)):
            out.append(bool(v))
        elif isinstance(v, (np.integer, np.floating, int, float)):
            f = float(v)
            out.append(int(f) if f.is_integer() else f)
        else:
            out.append(str(v))
    return out


def _num(v):
    v = float(v)
    return v if np.isfinite(v) else None
