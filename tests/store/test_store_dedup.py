"""Property: any interleaving of re-reported steps and retried attempts, written in any
chunking, reads back as one row per (key, step) — highest attempt, ties to the last write —
and final() as one row per trial."""

from __future__ import annotations

import os
import tempfile

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from storehelp import trial

from equisweep.store import dedup as dd
from equisweep.store import location as loc
from equisweep.store import open_store
from equisweep.store.schema import METRIC_FILE_SCHEMA, SEQ

KEYS = ["k0", "k1", "k2"]  # small domains: collisions (the interesting case) are common

report = st.tuples(
    st.sampled_from(KEYS), st.integers(1, 2), st.integers(0, 3), st.booleans()
)  # key, attempt, step, has test_loss


def _rows(reports):
    # The value column identifies the write position, so "which row won" is observable.
    return [{"key": k, "attempt": a, "step": s, "train_loss": float(i),
             "test_loss": float(1000 + i) if t else None}
            for i, (k, a, s, t) in enumerate(reports)]


def _expected(rows):
    best = {}
    for r in rows:  # later rows win ties, so >= keeps the last written
        cur = best.get((r["key"], r["step"]))
        if cur is None or r["attempt"] >= cur["attempt"]:
            best[r["key"], r["step"]] = r
    final, test = {}, {}
    for r in rows:
        cur = final.get(r["key"])
        if cur is None or (r["step"], r["attempt"]) >= (cur["step"], cur["attempt"]):
            final[r["key"]] = r
        if r["test_loss"] is not None:
            cur = test.get(r["key"])
            if cur is None or r["attempt"] >= cur["attempt"]:
                test[r["key"]] = r
    return best, final, test


def _chunks(rows, cuts):
    bounds = sorted({c % (len(rows) + 1) for c in cuts} | {0, len(rows)})
    return [rows[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(reports=st.lists(report, min_size=1, max_size=40),
       cuts=st.lists(st.integers(0, 40), min_size=1, max_size=6),
       raw_fragments=st.lists(st.booleans(), max_size=8))
def test_metrics_and_final_dedup(reports, cuts, raw_fragments):
    rows = _rows(reports)
    best, final, test = _expected(rows)
    with tempfile.TemporaryDirectory() as d:
        store = open_store(d)
        w = store.writer("sw", max_rows=10**9, max_delay_s=10**9)
        for i, chunk in enumerate(_chunks(rows, cuts)):
            if i < len(raw_fragments) and raw_fragments[i]:
                # A fragment written by another tool: no final-row summary in its footer.
                w.flush()
                first = loc.next_seq(len(chunk))
                table = pa.Table.from_pylist(
                    [dict(r, **{SEQ: first + j}) for j, r in enumerate(chunk)],
                    schema=METRIC_FILE_SCHEMA)
                os.makedirs(f"{d}/metrics/sweep=sw", exist_ok=True)
                # Its name sorts first: read order differs from write order, only _seq tells.
                pq.write_table(table, f"{d}/metrics/sweep=sw/part-{i:020d}-x.parquet")
            else:
                w.add_metrics(chunk)
                w.flush()
        for k in KEYS:
            w.add_trial(trial(k))
        w.close()

        m = store.metrics("sw")
        got = {(r["key"], r["step"]): r["train_loss"] for r in m.to_pylist()}
        assert got == {k: r["train_loss"] for k, r in best.items()}
        assert m.num_rows == len(best)
        pairs = list(zip(m.column("key").to_pylist(), m.column("step").to_pylist()))
        assert pairs == sorted(pairs)

        f = store.final("sw")
        assert f.column("key").to_pylist() == KEYS  # one row per trial, with or without metrics
        for r in f.to_pylist():
            exp = final.get(r["key"])
            assert r["train_loss"] == (exp["train_loss"] if exp else None)
            assert r["step"] == (exp["step"] if exp else None)
            exp_test = test.get(r["key"])
            assert r["test_loss"] == (exp_test["test_loss"] if exp_test else None)
            if exp:  # the final row is the max-step row of metrics()
                assert r["train_loss"] == max(
                    (s, v) for (k, s), v in got.items() if k == r["key"])[1]


@settings(max_examples=50, deadline=None, database=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 1000)),
                min_size=1, max_size=60))
def test_last_per_group_matches_python(rows):
    table = pa.table({"g": [r[0] for r in rows], "a": [r[1] for r in rows],
                      "o": [r[2] for r in rows]})
    idx = dd.last_per_group(table, ["g"], ["a", "o"]).tolist()
    expected = {}
    for i, (g, a, o) in enumerate(rows):
        if g not in expected or (a, o) >= (rows[expected[g]][1], rows[expected[g]][2]):
            expected[g] = i
    got = {rows[i][0]: (rows[i][1], rows[i][2]) for i in idx}
    assert got == {g: (rows[i][1], rows[i][2]) for g, i in expected.items()}
    assert idx == sorted(idx) and len(idx) == len(expected)
