"""Integrity check: read every file of a store in full and say which ones are damaged."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from equisweep.store import fragments, location
from equisweep.store.schema import BASELINE_FILE_SCHEMA, METRIC_FILE_SCHEMA, TRIAL_FILE_SCHEMA
from equisweep.store.writer import SUMMARY_KEY, decode_summary

_REQUIRED = {
    "trials": TRIAL_FILE_SCHEMA,
    "metrics": METRIC_FILE_SCHEMA,
    "baselines": BASELINE_FILE_SCHEMA,
}


@dataclass
class DamagedFile:
    path: str
    reason: str


@dataclass
class CheckReport:
    """good: readable files; damaged: unreadable ones; leftovers: temp files of interrupted
    writes (invisible to readers, safe to delete)."""

    store: str
    good: int = 0
    damaged: list[DamagedFile] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.damaged

    def __str__(self) -> str:
        lines = [f"store {self.store}: {self.good} good files, {len(self.damaged)} damaged"]
        lines += [f"DAMAGED {d.path}: {d.reason}" for d in self.damaged]
        if self.leftovers:
            lines.append(f"{len(self.leftovers)} leftover temporary files from interrupted "
                         "writes (ignored by readers; safe to delete):")
            lines += [f"  {p}" for p in self.leftovers]
        return "\n".join(lines)


def _check_parquet(fs, path: str, schema: pa.Schema) -> None:
    """What every reader checks (see equisweep.store.fragments), on the whole file."""
    with fs.open_input_file(path) as f:
        pf = pq.ParquetFile(f)
        problem = fragments.schema_problem(pf.schema_arrow, schema)
        if problem:
            raise ValueError(problem)
        table = pf.read()
        for x in schema:
            if x.name in table.column_names and not table.schema.field(x.name).type.equals(
                    x.type):
                table.column(x.name).cast(x.type)  # raises when the values do not fit
        problem = fragments.null_problem(table, schema)
        if problem:
            raise ValueError(problem)
        blob = (pf.metadata.metadata or {}).get(SUMMARY_KEY)
        if blob is not None:
            decode_summary(blob)


def _one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"[:300]


def check_store(store) -> CheckReport:
    fs, root = store.filesystem, store.root
    report = CheckReport(store.uri)
    for kind in location.KINDS:
        suffix = ".json" if kind == "sweeps" else ".parquet"
        frags, problems = fragments.scan(fs, root, kind, None, suffix)
        report.damaged += [DamagedFile(p.path, p.reason) for p in problems]
        for frag in frags:
            try:
                if kind == "sweeps":
                    with fs.open_input_stream(frag.path) as f:
                        if not isinstance(json.loads(f.read().decode()), dict):
                            raise ValueError("not a JSON object")
                else:
                    _check_parquet(fs, frag.path, _REQUIRED[kind])
            except FileNotFoundError:
                continue  # removed while we looked; nothing to report
            except Exception as err:  # any failure to read is what we are looking for
                report.damaged.append(DamagedFile(frag.path, _one_line(err)))
            else:
                report.good += 1
        report.leftovers += [f.path for f in
                             location.list_files(fs, root, kind, None, suffix, temp=True)]
    return report
