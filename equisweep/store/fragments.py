"""Which store files may be read as data: every fragment is an untrusted input.

A store is a folder anybody can put things into (a copy tool, a person, another program).
Before a reader uses a file it must be ours in shape: listed from inside the store (no
symlink that leaves it), readable, and a Parquet file whose columns have the store's types
with no nulls where the schema forbids them. What fails is a `Problem`: readers report it
once (`report`) and serve the rest; `equisweep store check` names every one and exits 1.
"""

from __future__ import annotations

import os
import threading
import warnings
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from equisweep.errors import UserError
from equisweep.store import location
from equisweep.store.naming import validate_sweep_name


class DamagedFragmentWarning(UserWarning):
    """A store file could not be read (or is not store data) and was skipped."""


@dataclass(frozen=True)
class Problem:
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


_reported: set[tuple[str, str]] = set()
_reported_lock = threading.Lock()


def report(problem: Problem) -> None:
    """Warn about `problem` once per process (readers meet the same file many times)."""
    key = (problem.path, problem.reason)
    with _reported_lock:
        if key in _reported:
            return
        _reported.add(key)
    warnings.warn(f"skipping damaged results file {problem}", DamagedFragmentWarning,
                  stacklevel=3)


def one_line(err: BaseException) -> str:
    return f"{type(err).__name__}: {' '.join(str(err).split())}"[:300]


# -- listing -------------------------------------------------------------------------------

def scan(fs, root: str, kind: str, sweep: str | None, suffix: str):
    """(fragments oldest first, problems) of one table of the store.

    Problems: the table folder is not a folder; a sweep folder cannot be listed; a symlink
    that leaves the store or points nowhere. Hidden names (temp files, other tools'
    markers) are neither data nor problems.
    """
    if isinstance(fs, pafs.LocalFileSystem):
        return _scan_local(root, kind, sweep, suffix)
    return _scan_remote(fs, root, kind, sweep, suffix)


def _sorted(frags):
    return sorted(frags, key=lambda f: (f.name, f.sweep))


def _sweep_of(folder_name: str) -> str | None:
    if not folder_name.startswith("sweep="):
        return None
    try:
        return validate_sweep_name(folder_name[len("sweep="):])
    except UserError:
        return None  # a folder somebody else put there; never ours


def _inside(path: str, real_root: str) -> bool:
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip("/") + "/")


def _link_problem(path: str, real_root: str) -> Problem | None:
    """A symlink is data only while it stays inside the store."""
    if not os.path.islink(path):
        return None
    target = os.path.realpath(path)
    if not os.path.exists(path):
        return Problem(path, f"dangling symlink (to {target})")
    if not _inside(path, real_root):
        return Problem(path, f"symlink leaving the store (to {target}); not read as data")
    return None


def _scan_local(root: str, kind: str, sweep: str | None, suffix: str):
    frags: list[location.Fragment] = []
    problems: list[Problem] = []
    real_root = os.path.realpath(root)
    base = f"{root}/{kind}"
    if not os.path.lexists(base):
        return frags, problems
    bad = _link_problem(base, real_root)
    if bad:
        return frags, [bad]
    if not os.path.isdir(base):
        return frags, [Problem(base, f"the {kind} table is a file, not a folder")]
    try:
        folders = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError as err:
        return frags, [Problem(base, f"cannot list the {kind} table: {one_line(err)}")]
    for entry in folders:
        name = _sweep_of(entry.name)
        if name is None or (sweep is not None and name != sweep):
            continue
        folder = f"{base}/{entry.name}"
        bad = _link_problem(folder, real_root)
        if bad:
            problems.append(bad)
            continue
        if not entry.is_dir():
            problems.append(Problem(folder, "a sweep folder that is a file"))
            continue
        try:
            files = list(os.scandir(folder))
        except OSError as err:
            problems.append(Problem(folder, f"cannot list the sweep folder: {one_line(err)}"))
            continue
        for f in files:
            if location.is_hidden(f.name) or not f.name.endswith(suffix):
                continue
            path = f"{folder}/{f.name}"
            bad = _link_problem(path, real_root)
            if bad:
                problems.append(bad)
            elif f.is_file():
                frags.append(location.Fragment(name, path))
    return _sorted(frags), problems


def _scan_remote(fs, root: str, kind: str, sweep: str | None, suffix: str):
    frags: list[location.Fragment] = []
    problems: list[Problem] = []
    base = f"{root}/{kind}"
    kind_type = location.file_type(fs, base)
    if kind_type == pafs.FileType.File:
        return frags, [Problem(base, f"the {kind} table is a file, not a folder")]
    if kind_type == pafs.FileType.NotFound:
        return frags, problems
    folder = base if sweep is None else f"{base}/sweep={validate_sweep_name(sweep)}"
    try:
        infos = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True,
                                                   recursive=True))
    except (OSError, pa.ArrowException) as err:
        return frags, [Problem(folder, f"cannot list: {one_line(err)}")]
    prefix_len = len(base) + 1
    for info in infos:
        rel = info.path[prefix_len:].split("/")
        name = _sweep_of(rel[0])
        if name is None:
            continue
        if len(rel) == 1 and info.type == pafs.FileType.File:
            problems.append(Problem(info.path, "a sweep folder that is a file"))
        if len(rel) != 2 or info.type != pafs.FileType.File:
            continue
        if location.is_hidden(rel[1]) or not rel[1].endswith(suffix):
            continue
        frags.append(location.Fragment(name, info.path))
    return _sorted(frags), problems


# -- content ----------------------------------------------------------------------------

def _compatible(actual: pa.DataType, expected: pa.DataType) -> bool:
    """Types a reader may cast without changing what the values mean."""
    if actual.equals(expected):
        return True
    if pa.types.is_dictionary(actual):
        return _compatible(actual.value_type, expected)
    for same_kind in (pa.types.is_integer, pa.types.is_floating, pa.types.is_timestamp):
        if same_kind(actual) and same_kind(expected):
            return True
    strings = (pa.types.is_string, pa.types.is_large_string)
    if any(s(actual) for s in strings) and any(s(expected) for s in strings):
        return True
    # Integers are exact as floats at the magnitudes a loss or FLOP count has.
    return pa.types.is_integer(actual) and pa.types.is_floating(expected)


def schema_problem(actual: pa.Schema, file_schema: pa.Schema) -> str | None:
    """Why a fragment with columns `actual` cannot be read as `file_schema`, if it cannot.

    Columns the schema makes optional may be absent (files written before they existed);
    extra columns are ignored; a `sweep` column is refused (the folder names the sweep).
    """
    if "sweep" in actual.names:
        return "has a 'sweep' column (a fragment's sweep is the folder it is in)"
    missing = [f.name for f in file_schema if not f.nullable and f.name not in actual.names]
    if missing:
        return f"missing required columns {missing}"
    for f in file_schema:
        if f.name in actual.names:
            got = actual.field(f.name).type
            if not _compatible(got, f.type):
                return f"column {f.name!r} is {got}, expected {f.type}"
    return None


def null_problem(table: pa.Table, file_schema: pa.Schema) -> str | None:
    """Nulls in columns the schema requires (a row without a key is nobody's row)."""
    bad = [f.name for f in file_schema
           if not f.nullable and f.name in table.column_names
           and table.column(f.name).null_count]
    return f"nulls in required columns {bad}" if bad else None


def footer_problem(fs, path: str, file_schema: pa.Schema) -> str | None:
    """`schema_problem` from the file's footer (no data read)."""
    schema = pq.read_schema(path, filesystem=fs)
    return schema_problem(schema, file_schema)
