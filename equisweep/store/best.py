"""The tuned points as rows of the store: `equisweep best`, `status` and `run`'s summary.

There is one selection rule, `equisweep.analysis.tuned.select` — the points the scaling-law
fits use (DESIGN §8): per grid cell, the finished trial with the lowest final validation
loss (trials without one rank after every trial with one, by their fitted loss; ties go to
the smaller key). Choosing on validation keeps the test split out of the choice, as
`ResultGrid.get_best_result(metric="val_loss", mode="min")` or `optuna best-trial` would.
This module only feeds the store's `final()` table to that rule and returns the chosen rows
whole; per variant it applies the same rule to cells widened to (family, augment).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from equisweep.errors import UserError

# The grouping columns, as the store names them (DESIGN §6).
CELL = ("sweep", "family", "size", "steps", "train_trajectories", "augment", "seed")
VARIANT = ("sweep", "family", "augment")
PER = {"cell": CELL, "variant": VARIANT}


def why_no_points(statuses, losses) -> str:
    """Why a sweep has no tuned point, in one phrase: its trials by status, and the finished
    ones whose loss (test, else val) is not finite. statuses and losses run over the same
    trials (losses NaN where none was recorded)."""
    statuses = [str(s) for s in statuses]
    if not statuses:
        return "the store holds no trial of it yet"
    counts: dict[str, int] = {}
    for st in statuses:
        counts[st] = counts.get(st, 0) + 1
    parts = [f"{n} {st}" for st, n in sorted(counts.items()) if st != "finished"]
    lossless = sum(1 for st, v in zip(statuses, losses) if st == "finished"
                   and not np.isfinite(v))
    if lossless:
        parts.insert(0, f"{lossless} finished without a finite test or val loss")
    return f"no finished trial with a finite loss among its {len(statuses)}: " + ", ".join(parts)


def final_loss(df) -> np.ndarray:
    """The loss a point is fitted on (analysis.data): test loss, else val loss."""
    test = np.asarray(df["test_loss"], dtype=float) if "test_loss" in df else None
    val = np.asarray(df["val_loss"], dtype=float) if "val_loss" in df else None
    if test is None and val is None:
        return np.full(len(df), np.nan)
    if test is None:
        return val
    return test if val is None else np.where(np.isfinite(test), test, val)


def best_trials(final: pa.Table, per: str = "cell") -> pa.Table:
    """One row of `final` per cell (or variant): its tuned point. Trials that are not
    finished, or have neither a finite val_loss nor a finite test_loss, are never chosen.
    Sorted by the grouping columns."""
    if per not in PER:
        raise UserError(f"--per must be one of {', '.join(PER)}, got {per!r}")
    need = {"status", "val_loss", "test_loss"}
    if final.num_rows == 0 or not need <= set(final.column_names):
        return final.slice(0, 0)
    from equisweep.analysis.data import variant_name
    from equisweep.analysis.tuned import CELL_IDENTITY, select

    ids = [c for c in CELL_IDENTITY if c in final.column_names]  # absent in older stores
    df = final.select(list(CELL) + ids + ["key", "status", "val_loss", "test_loss"]).to_pandas()
    df["row"] = np.arange(len(df))
    df = df[df["status"] == "finished"]
    val = df["val_loss"].to_numpy(float)
    test = df["test_loss"].to_numpy(float)
    loss = np.where(np.isfinite(test), test, val)  # what the fits fit (analysis.data)
    df = df.assign(loss=loss)[np.isfinite(loss)]
    augment = df["augment"].fillna(False).astype(bool)
    frame = df.assign(S=df["steps"], D=df["train_trajectories"], augment=augment,
                      variant=[variant_name(f, a) for f, a in zip(df["family"], augment)])
    records = []  # per cell, whatever `per` is: a grid edge is a property of a cell's search
    for _, one in frame.groupby("sweep", sort=True):
        records += select(one.reset_index(drop=True), "tuned")[1]
    if per == "variant":  # the same rule over cells that differ only in family + augment
        frame = frame.assign(size="", S=0, D=0, seed=0, cell_key="")  # datasets stay apart
    rows = []
    for _, one in frame.groupby("sweep", sort=True):
        chosen, _ = select(one.reset_index(drop=True), "tuned")
        rows += chosen["row"].tolist()
    picked = final.take(pa.array(sorted(rows), pa.int64()))
    picked = _with_grid_edge(final, picked, records)
    order = [(c, "ascending") for c in PER[per]]
    return picked.sort_by(order) if picked.num_rows else picked


def _with_grid_edge(final: pa.Table, picked: pa.Table, records) -> pa.Table:
    """`at_grid_edge`: which searched hyperparameter the tuned point took at the smallest or
    largest value its cell tried ("" where none; analysis/grid_edge.py)."""
    from equisweep.analysis import grid_edge

    hp_cols = [c for c in final.column_names if c.startswith("hp_") or c == "hparams"]
    hp = grid_edge.hparams_by_key(final.select(["key"] + hp_cols).to_pandas())
    flagged = grid_edge.flags(records, hp)
    col = [grid_edge.text(flagged.get(str(k), [])) for k in picked.column("key").to_pylist()]
    return picked.append_column("at_grid_edge", pa.array(col, pa.string()))
