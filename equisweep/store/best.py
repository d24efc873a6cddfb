"""The tuned points: the best trial of each cell (or variant) by final validation loss.

This is the one selection rule — what `equisweep best` prints and what the scaling-law
fits use (DESIGN §8: a cell's search samples are hyperparameter trials; only the best of
each cell is a point of the law). Selecting by *validation* loss keeps the test split out
of the choice, as `ResultGrid.get_best_result(metric="val_loss", mode="min")` or
`optuna best-trial` would. Pure pyarrow; works on the table `Store.final()` returns.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from equisweep.errors import UserError

# A grid cell: everything but the searched hyperparameters (DESIGN §6).
CELL = ("sweep", "family", "size", "steps", "train_trajectories", "augment", "seed")
# A variant: a family with or without augmentation.
VARIANT = ("sweep", "family", "augment")
PER = {"cell": CELL, "variant": VARIANT}
METRIC = "val_loss"


def best_trials(final: pa.Table, per: str = "cell", metric: str = METRIC) -> pa.Table:
    """One row of `final` per group (`per` = "cell" or "variant"): the finished trial with the
    lowest finite `metric`; ties go to the smaller key, so the choice is reproducible.
    Groups with no finished, finite trial have no row. Sorted by the group columns."""
    if per not in PER:
        raise UserError(f"--per must be one of {', '.join(PER)}, got {per!r}")
    groups = [c for c in PER[per] if c in final.column_names]
    if metric not in final.column_names or final.num_rows == 0:
        return final.slice(0, 0)
    ok = pc.and_(pc.equal(final.column("status"), "finished"),
                 pc.is_finite(final.column(metric).cast(pa.float64())))
    cand = final.filter(pc.fill_null(ok, False))
    if cand.num_rows == 0:
        return cand
    idx = pa.array(range(cand.num_rows), pa.int64())
    order = pc.sort_indices(cand.append_column("__i", idx),
                            sort_keys=[(metric, "ascending"), ("key", "ascending")])
    ranked = cand.take(order).append_column("__i", pc.take(idx, order))
    # use_threads=False keeps the sorted order inside each group, so "first" is the best.
    first = ranked.group_by(groups, use_threads=False).aggregate([("__i", "first")])
    picked = cand.take(first.column("__i_first"))
    return picked.sort_by([(c, "ascending") for c in groups])
