"""The results store: open it, write a sweep's rows, read deduplicated tables back.

Layout (hive-partitioned, append-only; every file is immutable once renamed into place)::

    <store>/trials/sweep=<name>/part-<seq>-<uuid>.parquet
    <store>/metrics/sweep=<name>/part-<seq>-<uuid>.parquet
    <store>/baselines/sweep=<name>/part-<seq>-<uuid>.parquet
    <store>/sweeps/sweep=<name>/meta-<seq>-<uuid>.json
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from equisweep.errors import UserError
from equisweep.store import dedup, fragments, location
from equisweep.store import where as where_
from equisweep.store.fragments import DamagedFragmentWarning  # noqa: F401  (public name)
from equisweep.store.naming import validate_sweep_name
from equisweep.store.schema import (
    BASELINE_FILE_SCHEMA,
    BASELINE_KEY,
    BASELINE_READ_SCHEMA,
    BASELINE_SCHEMA,
    METRIC_FIELDS,
    METRIC_FILE_SCHEMA,
    METRIC_READ_SCHEMA,
    METRIC_SCHEMA,
    SEQ,
    TRIAL_FILE_SCHEMA,
    TRIAL_READ_SCHEMA,
    TRIAL_SCHEMA,
    baseline_row,
    fill_derived,
)
from equisweep.store.skill import with_skill
from equisweep.store.spend import flops_at_forks
from equisweep.store.writer import SUMMARY_KEY, StoreWriter, decode_summary, write_fragment

log = logging.getLogger("equisweep.store")

_FORMAT = ds.ParquetFileFormat()
# Large metric scans keep the repeated key strings dictionary-encoded until the end.
_DICT = pa.dictionary(pa.int32(), pa.string())
_DICT_FORMAT = ds.ParquetFileFormat(
    read_options=ds.ParquetReadOptions(dictionary_columns={"key"}))
_METRIC_SCAN_SCHEMA = pa.schema(
    [f.with_type(_DICT) if f.name in ("sweep", "key") else f for f in METRIC_READ_SCHEMA])
_THREADS = 8  # footer reads are latency-bound on object stores


def _warn_damaged(path: str, err: BaseException | str) -> None:
    reason = err if isinstance(err, str) else fragments.one_line(err)
    log.debug("skipping damaged results file %s: %s", path, reason)
    fragments.report(fragments.Problem(path, reason))


def _guarded(frag, read):
    """read() of one fragment; None when it vanished meanwhile (a concurrent delete: logged)
    or is damaged (reported once, skipped)."""
    try:
        return read()
    except FileNotFoundError:
        log.info("results file vanished while reading: %s", frag.path)
    except (OSError, pa.ArrowException) as err:
        _warn_damaged(frag.path, err)
    return None


def _empty(schema: pa.Schema) -> pa.Table:
    return schema.empty_table()


# The columns final() returns: trial columns, then the last metric row (its attempt renamed).
CANDIDATE_SCHEMA = pa.schema(list(METRIC_READ_SCHEMA) + [
    pa.field(dedup.LAST_FLAG, pa.bool_()), pa.field(dedup.TEST_FLAG, pa.bool_())])

FINAL_SCHEMA = pa.schema(
    list(TRIAL_SCHEMA)
    + [pa.field("metric_attempt", pa.int64())]
    + [f.with_nullable(True) for f in METRIC_FIELDS if f.name not in ("key", "attempt")]
    # 1 − test_loss / (constant-velocity test loss on the same windows); null without one.
    + [pa.field("skill", pa.float64())]
)


class Store:
    """A results store at a local path or pyarrow filesystem URI (see `open_store`)."""

    def __init__(self, filesystem: pafs.FileSystem, root: str, uri: str):
        self.filesystem, self.root, self.uri = filesystem, root, uri

    def __repr__(self) -> str:
        return f"Store({self.uri!r})"

    def exists(self) -> bool:
        return location.file_type(self.filesystem, self.root) == pafs.FileType.Directory

    # -- writing -------------------------------------------------------------------------
    def writer(self, sweep: str, max_rows: int = 1000, max_delay_s: float = 5.0) -> StoreWriter:
        """A buffered writer for one sweep (flushes by rows, by age, and on flush/close)."""
        return StoreWriter(self, sweep, max_rows=max_rows, max_delay_s=max_delay_s)

    def write_sweep_meta(self, sweep: str, meta: dict) -> str:
        """Store the sweep's metadata (spec, budget, ...) as JSON; the newest write wins."""
        sweep = validate_sweep_name(sweep)
        text = json.dumps(meta, sort_keys=True, indent=1, allow_nan=False).encode()

        def write(fs, path):
            with fs.open_output_stream(path) as f:
                f.write(text)

        name = location.fresh_name("meta", location.next_seq(), ".json")
        return location.atomic_write(
            self.filesystem, f"{self.root}/sweeps/sweep={sweep}", name, write
        )

    def read_sweep_meta(self, sweep: str) -> dict | None:
        """The newest readable metadata of a sweep, or None if it has none."""
        files, problems = fragments.scan(self.filesystem, self.root, "sweeps",
                                         validate_sweep_name(sweep), ".json")
        for p in problems:
            _warn_damaged(p.path, p.reason)
        for frag in reversed(files):
            try:
                with self.filesystem.open_input_stream(frag.path) as f:
                    meta = json.loads(f.read().decode())
                if not isinstance(meta, dict):
                    raise ValueError("not a JSON object")
                return meta
            except FileNotFoundError:
                continue
            except (ValueError, UnicodeDecodeError, OSError) as err:
                _warn_damaged(frag.path, err)
        return None

    def write_baselines(self, sweep: str, rows: list[dict]) -> str | None:
        """Append zero-parameter baseline rows (one fragment); readers keep the newest row
        per (dataset, delta, split, baseline)."""
        sweep = validate_sweep_name(sweep)
        rows = [baseline_row(dict(r), sweep) for r in rows]
        if not rows:
            return None
        first = location.next_seq(len(rows))
        for i, r in enumerate(rows):
            r[SEQ] = first + i
        table = pa.Table.from_pylist(rows, schema=BASELINE_FILE_SCHEMA)
        return write_fragment(self.filesystem, f"{self.root}/baselines/sweep={sweep}", table)

    # -- reading -------------------------------------------------------------------------
    def sweeps(self) -> list[str]:
        """Names of every sweep with rows or metadata in the store, sorted."""
        names: set[str] = set()
        for kind in location.KINDS:
            names |= location.list_sweep_dirs(self.filesystem, self.root, kind)
        return sorted(names)

    def _listed(self, kind: str, sweep: str | None):
        """Fragments of a table as listed, reporting what cannot be data (see fragments)."""
        if sweep is not None:
            validate_sweep_name(sweep)
        frags, problems = fragments.scan(self.filesystem, self.root, kind, sweep, ".parquet")
        for p in problems:
            _warn_damaged(p.path, p.reason)
        return frags

    def _fragments(self, kind: str, sweep: str | None):
        """Listed fragments whose footer says they hold this table's columns and types."""
        frags = self._listed(kind, sweep)
        schema = _FILE_SCHEMAS[kind]

        def verdict(frag):
            try:
                return fragments.footer_problem(self.filesystem, frag.path, schema)
            except FileNotFoundError:
                log.info("results file vanished while reading: %s", frag.path)
                return "vanished"
            except (OSError, pa.ArrowException) as err:
                return fragments.one_line(err)

        with ThreadPoolExecutor(max_workers=min(_THREADS, max(1, len(frags)))) as pool:
            verdicts = list(pool.map(verdict, frags))
        good = []
        for frag, problem in zip(frags, verdicts):
            if problem is None:
                good.append(frag)
            elif problem != "vanished":
                _warn_damaged(frag.path, problem)
        return good

    def _dataset(self, frags, schema):
        dictionary = "key" in schema.names and schema.field("key").type == _DICT
        sweep_type = schema.field("sweep").type
        return ds.FileSystemDataset.from_paths(
            [f.path for f in frags],
            schema=schema,
            format=_DICT_FORMAT if dictionary else _FORMAT,
            filesystem=self.filesystem,
            partitions=[pc.field("sweep") == pa.scalar(f.sweep).cast(sweep_type)
                        for f in frags],
        )

    def _read(self, kind: str, sweep, schema, columns=None, filter=None) -> pa.Table:
        """All readable fragments as one table; damaged ones are skipped with a warning."""
        frags = self._fragments(kind, sweep)
        if not frags:
            return _empty(schema if columns is None else pa.schema([schema.field(c)
                                                                    for c in columns]))
        file_schema = _FILE_SCHEMAS[kind]
        wanted = columns
        if columns is not None:
            # A fragment with nulls where the schema forbids them is skipped by every
            # reader, whatever columns it asked for: read the required ones too.
            columns = list(columns) + [f.name for f in file_schema
                                       if not f.nullable and f.name not in columns]
        try:
            table = self._dataset(frags, schema).to_table(columns=columns, filter=filter)
            if fragments.null_problem(table, file_schema) is None:
                return table if wanted is None else table.select(wanted)
        except (OSError, pa.ArrowException):
            pass  # some fragment is damaged or vanished: find which, keep the rest
        parts = [p for p in (self._read_one(f, schema, file_schema, columns, filter)
                             for f in frags) if p is not None]
        if not parts:
            return _empty(schema if wanted is None else pa.schema([schema.field(c)
                                                                   for c in wanted]))
        table = pa.concat_tables(parts)
        return table if wanted is None else table.select(wanted)

    def _read_one(self, frag, schema, file_schema, columns=None, filter=None):
        """One fragment as a table, or None (reported) when it is damaged or has null keys;
        None, quietly, when it vanished (a concurrent compaction or delete)."""
        part = _guarded(frag, lambda: self._dataset([frag], schema).to_table(
            columns=columns, filter=filter))
        if part is None:
            return None
        problem = fragments.null_problem(part, file_schema)
        if problem:
            _warn_damaged(frag.path, problem)
            return None
        return part

    def trials(self, sweep: str | None = None, where=None) -> pa.Table:
        """One row per (sweep, key): the last-written trial row, sorted by sweep and key."""
        t = self._read("trials", sweep, TRIAL_READ_SCHEMA)
        t = t.take(dedup.last_per_group(t, ["sweep", "key"], [SEQ]))
        t = t.sort_by([("sweep", "ascending"), ("key", "ascending")])
        t = fill_derived(t.drop_columns([SEQ]))  # old stores: typed columns from their JSON
        return where_.filter_table(t.cast(TRIAL_SCHEMA), where)

    def baselines(self, sweep: str | None = None, where=None) -> pa.Table:
        """Zero-parameter baselines: one row per (sweep, dataset, delta, split, baseline)
        with its loss, clustered standard error and window count (the newest written)."""
        t = self._read("baselines", sweep, BASELINE_READ_SCHEMA)
        group = ["sweep", *BASELINE_KEY]
        t = t.take(dedup.last_per_group(t, group, [SEQ]))
        t = t.sort_by([(c, "ascending") for c in group])
        return where_.filter_table(t.drop_columns([SEQ]).cast(BASELINE_SCHEMA), where)

    def done_keys(self, sweep: str) -> set[str]:
        """Keys whose latest trial row says "finished" (what a resumed sweep skips)."""
        t = self.trials(validate_sweep_name(sweep))
        done = t.filter(pc.field("status") == "finished")
        return set(done.column("key").to_pylist())

    def metrics(self, sweep: str | None = None, where=None) -> pa.Table:
        """Deduplicated metric rows, sorted by (sweep, key, step).

        `where` is a filter string (see `equisweep.store.where`) or a pyarrow compute
        expression; it applies to the deduplicated rows.
        """
        expr, pushdown = None, None
        if where is not None:
            expr, pushdown = where_.compile_for(where, METRIC_SCHEMA)
        t = self._read("metrics", sweep, _METRIC_SCAN_SCHEMA, filter=pushdown)
        t = dedup.dedup_metrics(t)
        t = t.drop_columns([SEQ])
        if expr is not None and pushdown is None:
            t = where_.apply_filter(t, expr, where)
        return t.cast(METRIC_SCHEMA)

    def flops_spent(self, sweep: str | None = None) -> dict[str, float]:
        """Per sweep: training FLOPs really used, shared WSD trunk steps counted once.

        Sum over its trials of the largest cumulative `flops` any row reached, less, for each
        WSD branch (a trial row with `fork_step`), the cumulative FLOPs at its fork that its
        curve shares with its trunk (spent once, by the trunk). That value is interpolated
        linearly between the branch's rows either side of the fork step (from 0 at step 0):
        exact up to how much scene sizes, hence FLOPs per step, vary between those rows.
        """
        out = {}
        for name in [sweep] if sweep is not None else self.sweeps():
            raw = self._read("metrics", name, _METRIC_SCAN_SCHEMA,
                             columns=["key", "step", "flops"])
            if raw.num_rows == 0:
                continue
            keys = raw.column("key")
            if pa.types.is_dictionary(keys.type):  # partitioned reads dictionary-encode
                keys = keys.cast(keys.type.value_type)
            per_trial = pa.table({"key": keys, "flops": raw.column("flops")}).group_by(
                "key").aggregate([("flops", "max")])
            reached = dict(zip(per_trial.column("key").to_pylist(),
                               per_trial.column("flops_max").to_pylist()))
            forked = self.trials(name).filter(pc.is_valid(pc.field("fork_step")))
            fork_at = dict(zip(forked.column("key").to_pylist(),
                               forked.column("fork_step").to_pylist()))
            if fork_at:
                for k, shared in flops_at_forks(keys, raw, fork_at).items():
                    if reached.get(k) is not None:
                        reached[k] = max(0.0, reached[k] - shared)
            out[name] = float(sum(v for v in reached.values() if v is not None))
        return out

    def _candidates(self, sweep: str | None) -> pa.Table:
        """Per-fragment final-row candidates, from footers where present."""
        frags = self._listed("metrics", sweep)  # validated from the footer read below

        def one(frag):
            footer = _guarded(frag, lambda: pq.read_metadata(frag.path,
                                                             filesystem=self.filesystem))
            if footer is None:
                return None
            problem = fragments.schema_problem(footer.schema.to_arrow_schema(),
                                               METRIC_FILE_SCHEMA)
            if problem:
                _warn_damaged(frag.path, problem)
                return None
            blob = (footer.metadata or {}).get(SUMMARY_KEY)
            if blob is not None:
                try:
                    cand = decode_summary(blob).select(CANDIDATE_SCHEMA.names[1:])
                    if fragments.null_problem(cand, METRIC_FILE_SCHEMA) is None:
                        return cand
                    log.info("recomputing a summary with null keys of %s", frag.path)
                except (pa.ArrowException, ValueError, KeyError) as err:
                    log.info("recomputing unreadable summary of %s: %s", frag.path, err)
            return frag  # written without a summary: read it in full below

        with ThreadPoolExecutor(max_workers=min(_THREADS, max(1, len(frags)))) as pool:
            results = list(pool.map(one, frags))
        parts, missing = [], []
        for frag, res in zip(frags, results):
            if isinstance(res, pa.Table):
                sweep_col = pa.array([frag.sweep] * res.num_rows, pa.string())
                parts.append(res.add_column(0, "sweep", sweep_col))
            elif res is not None:
                missing.append(res)
        for frag in missing:
            full = self._read_one(frag, METRIC_READ_SCHEMA, METRIC_FILE_SCHEMA)
            if full is not None:
                parts.append(dedup.fragment_candidates(full))
        if not parts:
            return _empty(CANDIDATE_SCHEMA)
        return pa.concat_tables([p.select(CANDIDATE_SCHEMA.names).cast(CANDIDATE_SCHEMA)
                                 for p in parts])

    def final(self, sweep: str | None = None, where=None) -> pa.Table:
        """One row per trial: its trial columns, its last (max step) metric row, test_loss."""
        trials = self.trials(sweep)
        rows = dedup.final_metric_rows(self._candidates(sweep))
        rows = rows.drop_columns([SEQ])
        rows = rows.rename_columns(
            ["metric_attempt" if c == "attempt" else c for c in rows.column_names]
        )
        if rows.num_rows == 0 or trials.num_rows == 0:
            joined = trials
            for f in FINAL_SCHEMA:
                if f.name not in joined.column_names:
                    joined = joined.append_column(f, pa.nulls(joined.num_rows, f.type))
        else:
            joined = trials.join(rows, keys=["sweep", "key"], join_type="left outer")
        joined = with_skill(joined, self.baselines(sweep))
        joined = joined.select(FINAL_SCHEMA.names).cast(FINAL_SCHEMA)
        joined = joined.sort_by([("sweep", "ascending"), ("key", "ascending")])
        return where_.filter_table(joined, where)

    def check(self):
        """Read every file in full; see `equisweep.store.check.check_store`."""
        from equisweep.store.check import check_store

        return check_store(self)


_FILE_SCHEMAS = {"trials": TRIAL_FILE_SCHEMA, "metrics": METRIC_FILE_SCHEMA,
                 "baselines": BASELINE_FILE_SCHEMA}


def open_store(uri, *, filesystem: pafs.FileSystem | None = None, must_exist: bool = False):
    """Open the results store at a local path or pyarrow filesystem URI.

    The folder is created by the first write. `must_exist=True` (what read-only commands
    use) raises UserError "no results store at PATH" when nothing is there.
    """
    fs, root = location.resolve(uri, filesystem)
    kind = location.file_type(fs, root)
    shown = uri if isinstance(uri, str) else str(uri)
    if kind == pafs.FileType.File:
        raise UserError(f"results store {shown} is a file, not a folder")
    if must_exist and kind != pafs.FileType.Directory:
        raise UserError(f"no results store at {shown}")
    return Store(fs, root, shown)
