"""Buffered, append-only writer of one sweep's rows (the driver's Tune callback owns one).

Rows are validated when added, so a bad row fails at the call that produced it, and kept
as small Arrow tables until a flush writes one fragment per kind. Flushes happen by row
count, by age of the oldest buffered row (checked on each add), and on flush()/close().
"""

from __future__ import annotations

import base64
import logging
import threading
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from equisweep.store import dedup, location
from equisweep.store.naming import validate_sweep_name
from equisweep.store.schema import (
    METRIC_FILE_SCHEMA,
    SEQ,
    TRIAL_FILE_SCHEMA,
    conform_table,
    metric_row,
    trial_row,
)

log = logging.getLogger("equisweep.store")

SUMMARY_KEY = b"equisweep.final_candidates.v1"


def encode_summary(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return base64.b64encode(sink.getvalue().to_pybytes())


def decode_summary(blob: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(base64.b64decode(blob))).read_all()


def write_fragment(fs, directory: str, table: pa.Table, metadata: dict | None = None) -> str:
    seq = pc.min(table.column(SEQ)).as_py() if table.num_rows else location.next_seq()

    def write(fs, path):
        with fs.open_output_stream(path) as sink:
            with pq.ParquetWriter(sink, table.schema) as w:
                w.write_table(table)
                if metadata:
                    w.add_key_value_metadata(metadata)

    return location.atomic_write(fs, directory, location.fresh_name("part", seq, ".parquet"), write)


class _Buffer:
    def __init__(self, schema: pa.Schema, kind: str):
        self.schema, self.kind = schema, kind
        self.tables: list[pa.Table] = []
        self.rows = 0

    def add(self, table: pa.Table):
        self.tables.append(table)
        self.rows += table.num_rows

    def take(self) -> pa.Table | None:
        if not self.rows:
            return None
        out = pa.concat_tables(self.tables)
        self.tables, self.rows = [], 0
        # Key-major fragments: readers gather whole runs of a trial's rows instead of single
        # rows, the key column compresses to runs, and row-group statistics can prune a
        # `key == ...` filter. Write order stays in `_seq`.
        order = [(c, "ascending") for c in ("key", "step", "attempt", SEQ)
                 if c in out.column_names]
        return out.sort_by(order).combine_chunks()


class StoreWriter:
    """Append rows of one sweep. Use as a context manager or call close()."""

    def __init__(self, store, sweep: str, max_rows: int = 1000, max_delay_s: float = 5.0):
        self.store = store
        self.sweep = validate_sweep_name(sweep)
        self.max_rows = int(max_rows)
        self.max_delay_s = float(max_delay_s)
        self._trials = _Buffer(TRIAL_FILE_SCHEMA, "trial")
        self._metrics = _Buffer(METRIC_FILE_SCHEMA, "metric")
        self._first_at: float | None = None
        self._lock = threading.RLock()
        self._closed = False
        self.fragments_written: list[str] = []

    # -- adding ------------------------------------------------------------------------
    def add_trial(self, row: dict) -> None:
        """One trial status row (running/finished/failed/... for one attempt)."""
        self._add(self._trials, [trial_row(row, self.sweep)])

    def add_metrics(self, rows) -> None:
        """Metric rows: a list of dicts, or a pyarrow Table/RecordBatch for bulk imports."""
        if isinstance(rows, (pa.Table, pa.RecordBatch)):
            table = pa.Table.from_batches([rows]) if isinstance(rows, pa.RecordBatch) else rows
            self._add_table(self._metrics, table)
        else:
            self._add(self._metrics, [metric_row(r, self.sweep) for r in rows])

    def add_trials(self, rows) -> None:
        """Several trial rows (list of dicts or a pyarrow Table)."""
        if isinstance(rows, pa.Table):
            self._add_table(self._trials, rows)
        else:
            self._add(self._trials, [trial_row(r, self.sweep) for r in rows])

    def _add(self, buf: _Buffer, rows: list[dict]) -> None:
        if not rows:
            return
        with self._lock:
            self._check_open()
            first = location.next_seq(len(rows))
            for i, r in enumerate(rows):
                r[SEQ] = first + i
            buf.add(pa.Table.from_pylist(rows, schema=buf.schema))
            self._after_add()

    def _add_table(self, buf: _Buffer, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if "sweep" in table.column_names:
            bad = table.filter(pc.not_equal(table.column("sweep"), self.sweep))
            if bad.num_rows:
                raise ValueError(f"rows of another sweep given to the writer of {self.sweep!r}")
            table = table.drop_columns(["sweep"])
        if SEQ in table.column_names:
            raise ValueError(f"{SEQ} is assigned by the writer")
        with self._lock:
            self._check_open()
            first = location.next_seq(table.num_rows)
            seq = np.arange(first, first + table.num_rows, dtype=np.int64)
            table = table.append_column(SEQ, pa.array(seq))
            buf.add(conform_table(table, buf.schema, buf.kind))
            self._after_add()

    def _after_add(self) -> None:
        now = time.monotonic()
        if self._first_at is None:
            self._first_at = now
        if (self._trials.rows + self._metrics.rows >= self.max_rows
                or now - self._first_at >= self.max_delay_s):
            self.flush()

    def _check_open(self):
        if self._closed:
            raise RuntimeError(f"writer of sweep {self.sweep!r} is closed")

    # -- writing -----------------------------------------------------------------------
    def flush(self) -> None:
        """Write buffered rows as new fragments (metrics first, then trial rows)."""
        with self._lock:
            metrics, trials = self._metrics.take(), self._trials.take()
            self._first_at = None
            metrics_done = False
            fs, root = self.store.filesystem, self.store.root
            # Metrics go first: a "finished" trial row must never be visible (and so
            # skipped on resume) while the metric rows it summarises are not.
            try:
                if metrics is not None:
                    meta = {SUMMARY_KEY: encode_summary(dedup.fragment_candidates(metrics))}
                    path = write_fragment(fs, f"{root}/metrics/sweep={self.sweep}", metrics,
                                          meta)
                    self.fragments_written.append(path)
                    metrics_done = True
                if trials is not None:
                    path = write_fragment(fs, f"{root}/trials/sweep={self.sweep}", trials)
                    self.fragments_written.append(path)
            except BaseException:
                # Keep what was not written, so a retried flush()/close() loses nothing.
                if metrics is not None and not metrics_done:
                    self._metrics.add(metrics)
                if trials is not None:
                    self._trials.add(trials)
                raise
            if metrics is not None or trials is not None:
                log.debug("flushed sweep %s: %d metric rows, %d trial rows", self.sweep,
                          0 if metrics is None else metrics.num_rows,
                          0 if trials is None else trials.num_rows)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self.flush()
                self._closed = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
