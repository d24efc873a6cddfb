"""Vectorised "last row wins" logic: no per-row Python.

Rules (DESIGN §7; docs/STORE.md writes them in SQL): a trial shows its last-written row; a
metric (sweep, key, step) shows the row of the highest attempt, ties going to the last
written (`_seq`); a trial's final row is its max-step metric row and its test_loss comes
from the latest-attempt row that has one. Both "max of (step, attempt, _seq)" and "max of
(attempt, _seq) among rows with test_loss" are decomposable, so each fragment stores its own
candidates (see `fragment_candidates`) and `final()` reduces those instead of rescanning
every metric row.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from equisweep.store.schema import SEQ

LAST_FLAG = "_is_last"
TEST_FLAG = "_is_test"
# A trial's test result: the columns its final evaluation wrote (test_loss marks the row).
TEST_COLUMNS = ("test_loss", "test_loss_se", "test_windows")


def _np(col) -> np.ndarray:
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    return col.to_numpy(zero_copy_only=False)


def last_per_group(table: pa.Table, group_cols, order_cols) -> np.ndarray:
    """Indices (ascending) of the row with the largest `order_cols` tuple in each group."""
    n = table.num_rows
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    keys = [(c, "ascending") for c in list(group_cols) + list(order_cols)]
    order = pc.sort_indices(table.select(list(group_cols) + list(order_cols)), sort_keys=keys)
    last = np.zeros(n, dtype=bool)
    last[-1] = True
    if n > 1:
        changed = np.zeros(n - 1, dtype=bool)
        for c in group_cols:
            col = table.column(c).take(order)
            changed |= _np(pc.not_equal(col.slice(1), col.slice(0, n - 1)))
        last[:-1] = changed
    return np.sort(_np(order)[last])


def dense_ranks(col) -> tuple[np.ndarray, int]:
    """Codes that order like the values (dense rank) and their count — no full sort."""
    if isinstance(col, pa.Array):
        col = pa.chunked_array([col])
    if pa.types.is_integer(col.type):
        values = _np(col).astype(np.int64, copy=False)
        lo, hi = (int(values.min()), int(values.max())) if values.size else (0, 0)
        if hi - lo <= 4 * max(values.size, 1):  # steps: a dense range, offsets are ranks
            return values - lo, hi - lo + 1
    if not pa.types.is_dictionary(col.type):
        col = pc.dictionary_encode(col)
    col = col.unify_dictionaries()
    dictionary = col.chunk(0).dictionary if col.num_chunks else pa.array([], col.type.value_type)
    k = len(dictionary)
    rank = np.empty(k, dtype=np.int64)
    rank[_np(pc.sort_indices(dictionary))] = np.arange(k, dtype=np.int64)
    codes = [c.indices.to_numpy(zero_copy_only=False) for c in col.chunks]
    return rank[np.concatenate(codes) if codes else np.zeros(0, np.int64)], k


def group_ids(table: pa.Table, cols) -> np.ndarray | None:
    """One int64 per row, equal iff the `cols` values are equal and ordered like them.

    None when the combined code would overflow int64 (callers fall back to sorting).
    """
    gid = np.zeros(table.num_rows, dtype=np.int64)
    span = 1
    for c in cols:
        codes, k = dense_ranks(table.column(c))
        span *= max(k, 1)
        if span >= 2**62:
            return None
        gid = gid * k + codes
    return gid


def dedup_metrics(table: pa.Table, sort: bool = True) -> pa.Table:
    """One row per (sweep, key, step): highest attempt, then last written; sorted by them."""
    n = table.num_rows
    if n == 0:
        return table
    gid = group_ids(table, ["sweep", "key", "step"])
    if gid is None:
        keep = last_per_group(table, ["sweep", "key", "step"], ["attempt", SEQ])
        out = table.take(keep)
        if sort:
            out = out.sort_by([("sweep", "ascending"), ("key", "ascending"), ("step", "ascending")])
        return out
    order = np.argsort(gid, kind="stable")
    g = gid[order]
    same = g[1:] == g[:-1]
    keep = np.ones(n, dtype=bool)
    if same.any():
        # Re-reported steps are rare: rank only the rows that share a (sweep, key, step).
        in_dup = np.zeros(n, dtype=bool)
        in_dup[1:] |= same
        in_dup[:-1] |= same
        dup_idx = order[in_dup]
        sub = pa.table({"g": gid[dup_idx], "attempt": table.column("attempt").take(dup_idx),
                        SEQ: table.column(SEQ).take(dup_idx)})
        keep[dup_idx] = False
        keep[dup_idx[last_per_group(sub, ["g"], ["attempt", SEQ])]] = True
    idx = order[keep[order]] if sort else np.flatnonzero(keep)
    if idx.size == n and np.array_equal(idx, np.arange(n)):
        return table
    return take_runs(table, idx)


def take_runs(table: pa.Table, idx: np.ndarray) -> pa.Table:
    """`table.take(idx)`, but as zero-copy slices when idx is made of long contiguous runs.

    Fragments are key-major, so sorted metric rows are runs of one trial's steps; a row
    gather would copy every column of millions of rows at random.
    """
    if idx.size == 0:
        return table.slice(0, 0)
    starts = np.flatnonzero(np.diff(idx) != 1) + 1
    if starts.size + 1 > max(1, idx.size // 64):
        return table.take(idx)
    bounds = np.concatenate([[0], starts, [idx.size]])
    pieces = [table.slice(int(idx[a]), int(b - a)) for a, b in zip(bounds[:-1], bounds[1:])]
    return pa.concat_tables(pieces)


def fragment_candidates(table: pa.Table) -> pa.Table:
    """Rows of one fragment that can still be some trial's final or test_loss row.

    Per key: the max (step, attempt, _seq) row (flag `_is_last`) and the max (attempt, _seq)
    row among rows with a test_loss (flag `_is_test`); one row may carry both flags.
    """
    n = table.num_rows
    last_idx = last_per_group(table, ["key"], ["step", "attempt", SEQ])
    valid = np.flatnonzero(_np(pc.is_valid(table.column("test_loss"))))
    test_idx = np.zeros(0, dtype=np.int64)
    if valid.size:
        sub = table.select(["key", "attempt", SEQ]).take(valid)
        test_idx = valid[last_per_group(sub, ["key"], ["attempt", SEQ])]
    is_last = np.zeros(n, dtype=bool)
    is_test = np.zeros(n, dtype=bool)
    is_last[last_idx] = True
    is_test[test_idx] = True
    idx = np.flatnonzero(is_last | is_test)
    out = table.take(idx)
    out = out.append_column(LAST_FLAG, pa.array(is_last[idx]))
    return out.append_column(TEST_FLAG, pa.array(is_test[idx]))


def final_metric_rows(candidates: pa.Table) -> pa.Table:
    """Reduce candidates (with `sweep`) to one metric row per (sweep, key)."""
    last = candidates.filter(pc.field(LAST_FLAG))
    last = last.take(last_per_group(last, ["sweep", "key"], ["step", "attempt", SEQ]))
    test = candidates.filter(pc.field(TEST_FLAG))
    test = test.take(last_per_group(test, ["sweep", "key"], ["attempt", SEQ]))
    # The test columns travel together: one row measured all of them.
    cols = [c for c in TEST_COLUMNS if c in test.column_names]
    test = test.select(["sweep", "key", *cols]).rename_columns(
        ["sweep", "key", *[f"_{c}" for c in cols]])
    last = last.drop_columns([LAST_FLAG, TEST_FLAG])
    if test.num_rows == 0:
        return last
    joined = last.join(test, keys=["sweep", "key"], join_type="left outer")
    for c in cols:
        i = joined.schema.get_field_index(c)
        joined = joined.set_column(i, c, joined.column(f"_{c}"))
    return joined.drop_columns([f"_{c}" for c in cols])
