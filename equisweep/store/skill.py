"""`skill`: a trial's test loss read against the constant-velocity baseline on the same windows."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

# The baseline `skill` is measured against (task/baselines.py REFERENCE; kept as a literal
# so reading a store never imports torch).
SKILL_BASELINE = "constant_velocity"


def with_skill(final: pa.Table, baselines: pa.Table) -> pa.Table:
    """Add `skill` = 1 − test_loss / reference test loss, matched on (sweep, dataset, delta)."""
    if "skill" in final.column_names:
        final = final.drop_columns(["skill"])
    ref = baselines.filter((pc.field("split") == "test")
                           & (pc.field("baseline") == SKILL_BASELINE))
    ref = ref.select(["sweep", "dataset", "delta", "loss"]).rename_columns(
        ["sweep", "dataset", "delta", "_ref"])
    if final.num_rows == 0 or ref.num_rows == 0 or "dataset" not in final.column_names:
        return final.append_column("skill", pa.nulls(final.num_rows, pa.float64()))
    order = pa.array(range(final.num_rows), pa.int64())
    joined = final.append_column("_row", order).join(
        ref, keys=["sweep", "dataset", "delta"], join_type="left outer")
    joined = joined.sort_by("_row")
    ratio = pc.divide(joined.column("test_loss").cast(pa.float64()), joined.column("_ref"))
    skill = pc.subtract(pa.scalar(1.0), ratio)
    return joined.drop_columns(["_row", "_ref"]).append_column("skill", skill)
