"""Readers that survive damage: every store file is an untrusted input.

A store of two good trials (k1, k2) gets one foreign or damaged thing at a time: a valid
Parquet file with the wrong columns, wrong types or null keys, a table folder replaced by
a file, and (local stores) symlinks leaving the store or pointing nowhere and folders or
files this user cannot read. For each, on a local store and on a real S3-compatible server
(moto's server mode): the Python API (`trials`, `metrics`, `final`, `done_keys`) and the
CLI readers (`query`, `query --final`, `status`, `analyze`) serve exactly the good rows and
report the file once; `equisweep store check` names it and exits 1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from equisweep.cli import main
from equisweep.store import fragments, open_store
from equisweep.store.schema import METRIC_FILE_SCHEMA, TRIAL_FILE_SCHEMA
from tests.reliability.helpers import as_nobody as _as_nobody
from tests.reliability.s3 import moto_s3
from tests.reliability.storerows import write_minimal_sweep

GOOD_KEYS = ["k1", "k2"]
GOOD_STEPS = [("k1", 10), ("k1", 20), ("k2", 10), ("k2", 20)]


def _metric_rows(n=2, **override):
    rows = {f.name: pa.nulls(n, f.type) for f in METRIC_FILE_SCHEMA}
    rows.update(key=pa.array(["k9"] * n), attempt=pa.array([1] * n, pa.int64()),
                step=pa.array([10 * (i + 1) for i in range(n)], pa.int64()),
                _seq=pa.array(list(range(n)), pa.int64()),
                train_loss=pa.array([0.5] * n))
    rows.update(override)
    return pa.table(rows)


def _trial_rows(**override):
    rows = {f.name: pa.nulls(1, f.type) for f in TRIAL_FILE_SCHEMA}
    rows.update(key=pa.array(["k9"]), status=pa.array(["finished"]),
                attempt=pa.array([1], pa.int64()), _seq=pa.array([1], pa.int64()))
    rows.update(override)
    return pa.table(rows)


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


# id -> (table folder, bytes of a valid Parquet file that is not store data)
CONTENT = {
    "wrong_columns": ("metrics", pa.table({"a": [1, 2], "b": ["x", "y"]})),
    "key_is_int": ("metrics", _metric_rows(key=pa.array([1, 2], pa.int64()))),
    "step_is_text": ("metrics", _metric_rows(step=pa.array(["10", "20"]))),
    "loss_is_text": ("metrics", _metric_rows(train_loss=pa.array(["low", "high"]))),
    "null_key": ("metrics", _metric_rows(key=pa.array(["k9", None]))),
    "null_step": ("metrics", _metric_rows(step=pa.array([10, None], pa.int64()))),
    "null_attempt": ("metrics", _metric_rows(attempt=pa.array([None, 1], pa.int64()))),
    "all_keys_null": ("metrics", _metric_rows(key=pa.nulls(2, pa.string()))),
    "missing_seq": ("metrics", _metric_rows().drop_columns(["_seq"])),
    "has_sweep_column": ("metrics", _metric_rows().append_column("sweep",
                                                                  pa.array(["a", "a"]))),
    "no_rows_no_columns": ("metrics", pa.table({})),
    "trial_null_status": ("trials", _trial_rows(status=pa.array([None], pa.string()))),
    "trial_null_key": ("trials", _trial_rows(key=pa.array([None], pa.string()))),
    "trial_attempt_is_text": ("trials", _trial_rows(attempt=pa.array(["one"]))),
    "trial_wrong_columns": ("trials", pa.table({"key": ["k9"], "colour": ["red"]})),
}
STRUCTURE = ["metrics_table_is_a_file", "trials_table_is_a_file"]
LOCAL_ONLY = ["symlink_out_of_store", "dangling_symlink", "sweep_folder_symlink_out",
              "sweep_folder_unreadable", "fragment_unreadable", "sweep_folder_is_a_file"]


class Local:
    name = "local"

    def __init__(self, root: Path):
        self.root = root
        self.uri = str(root / "store")

    def put(self, rel: str, data: bytes) -> str:
        path = Path(self.uri) / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return str(path)

    def remove_tree(self, rel: str) -> None:
        shutil.rmtree(Path(self.uri) / rel)


class S3:
    name = "s3"

    def __init__(self, bucket: str):
        self.bucket = bucket
        self.prefix = f"store-{uuid.uuid4().hex[:8]}"
        self.uri = f"s3://{bucket}/{self.prefix}"
        store = open_store(self.uri)
        self.fs, self.root = store.filesystem, store.root

    def put(self, rel: str, data: bytes) -> str:
        path = f"{self.root}/{rel}"
        with self.fs.open_output_stream(path) as f:
            f.write(data)
        return path

    def remove_tree(self, rel: str) -> None:
        self.fs.delete_dir(f"{self.root}/{rel}")


@pytest.fixture(scope="module")
def s3_bucket():
    with moto_s3("untrusted") as (_, bucket, env):
        yield bucket, env


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path, monkeypatch):
    if request.param == "local":
        return Local(tmp_path)
    bucket, env = request.getfixturevalue("s3_bucket")
    # The server lives for the module, but every test starts from the environment it found
    # (tests/conftest.py restores os.environ after each test): point this one at the server.
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return S3(bucket)


def _good_store(backend) -> None:
    write_minimal_sweep(backend.uri, "a", keys=("k1",))
    write_minimal_sweep(backend.uri, "a", keys=("k2",))


def _damage_content(backend, case: str) -> str:
    table_folder, table = CONTENT[case]
    return backend.put(f"{table_folder}/sweep=a/part-{'9' * 20}-foreign.parquet",
                       _parquet(table))


def _damage_structure(backend, case: str) -> str:
    table_folder = case.split("_")[0]
    backend.remove_tree(table_folder)
    return backend.put(table_folder, b"not a folder")


@contextlib.contextmanager
def _fresh_reports():
    """Each CLI command is its own process: it reports a file once, afresh."""
    fragments._reported.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    fragments._reported.clear()


def _mentions(caught, path: str) -> int:
    return sum(1 for w in caught if issubclass(w.category, fragments.DamagedFragmentWarning)
               and path in str(w.message))


def _stderr_mentions(err: str, path: str) -> int:
    """Lines of a command's stderr that report `path` (one-line warnings, DESIGN §9)."""
    return sum(1 for ln in err.splitlines() if path in ln and ": warning: " in ln)


def _assert_readers_serve_the_rest(uri: str, bad: str, *, trials_damaged: bool, capsys,
                                   tmp_path) -> None:
    s = open_store(uri)
    with _fresh_reports() as caught:
        trials = s.trials(sweep="a").column("key").to_pylist()
        metrics = sorted(zip(*s.metrics(sweep="a").select(["key", "step"]).to_pydict()
                             .values()))
        final = {r["key"]: r["step"] for r in s.final(sweep="a").to_pylist()}
        done = s.done_keys("a")
    assert _mentions(caught, bad) == 1, [str(w.message) for w in caught]
    # The foreign file's trial k9 never appears; the good trials are all there.
    assert trials == GOOD_KEYS
    assert final == {"k1": 20, "k2": 20}
    assert done == set(GOOD_KEYS)
    assert metrics == GOOD_STEPS
    capsys.readouterr()
    for argv in (["query", "a"], ["query", "a", "--final"], ["status"],
                 ["analyze", "a", "--bootstrap", "0", "--no-png", "--out",
                  str(tmp_path / f"report-{uuid.uuid4().hex[:6]}")]):
        with _fresh_reports():
            code = main([*argv, "--store", uri])
        out, err = capsys.readouterr()
        assert code == 0, (argv, out, err)
        reads_it = argv != ["query", "a"] or not trials_damaged  # plain query: metrics only
        assert _stderr_mentions(err, bad) == int(reads_it), (argv, err)
        if argv[0] == "query":
            assert all(k in out for k in GOOD_KEYS) and "k9" not in out, out
    with _fresh_reports():
        assert main(["store", "check", "--store", uri]) == 1
    out, _ = capsys.readouterr()
    assert any(ln.startswith(f"DAMAGED {bad}") for ln in out.splitlines()), out


@pytest.mark.parametrize("case", sorted(CONTENT))
def test_foreign_parquet_is_reported_skipped_and_named_by_check(backend, case, capsys,
                                                                 tmp_path):
    _good_store(backend)
    bad = _damage_content(backend, case)
    _assert_readers_serve_the_rest(backend.uri, bad,
                                   trials_damaged=CONTENT[case][0] == "trials",
                                   capsys=capsys, tmp_path=tmp_path)


@pytest.mark.parametrize("case", STRUCTURE)
def test_table_folder_replaced_by_a_file(backend, case, capsys, tmp_path):
    _good_store(backend)
    bad = _damage_structure(backend, case)
    s = open_store(backend.uri)
    with _fresh_reports() as caught:
        table = s.trials(sweep="a") if case.startswith("trials") else s.metrics(sweep="a")
    assert table.num_rows == 0 and _mentions(caught, bad) == 1
    with _fresh_reports():
        assert main(["store", "check", "--store", backend.uri]) == 1
    out, _ = capsys.readouterr()
    assert f"DAMAGED {bad}" in out
    with _fresh_reports():  # the other table still answers
        other = s.metrics(sweep="a") if case.startswith("trials") else s.trials(sweep="a")
        assert other.num_rows in (len(GOOD_STEPS), len(GOOD_KEYS))
        fragments._reported.clear()
        assert main(["status", "--store", backend.uri]) == 0
    assert _stderr_mentions(capsys.readouterr().err, bad) == 1


@pytest.fixture
def open_tmp():
    """A folder every user may enter (pytest's tmp_path is private to its owner)."""
    root = Path(tempfile.mkdtemp(prefix="equisweep-untrusted-"))
    root.chmod(0o755)
    yield root
    for dirpath, dirnames, _ in os.walk(root):
        for d in dirnames:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(dirpath, d), 0o755)
    shutil.rmtree(root, ignore_errors=True)


def _damage_local(root: Path, store: Path, case: str) -> str:
    folder = store / "metrics" / "sweep=a"
    outside = root / "outside"
    outside.mkdir(exist_ok=True)
    good = sorted(folder.glob("*.parquet"))[0]
    if case == "symlink_out_of_store":
        foreign = outside / "part-x.parquet"
        foreign.write_bytes(_parquet(_metric_rows()))
        link = folder / f"part-{'9' * 20}-link.parquet"
        link.symlink_to(foreign)
        return str(link)
    if case == "dangling_symlink":
        link = folder / f"part-{'9' * 20}-dangling.parquet"
        link.symlink_to(outside / "gone.parquet")
        return str(link)
    if case == "sweep_folder_symlink_out":
        target = outside / "sweep=b"
        target.mkdir()
        (target / "part-1-x.parquet").write_bytes(_parquet(_metric_rows()))
        link = store / "metrics" / "sweep=b"
        link.symlink_to(target)
        return str(link)
    if case == "sweep_folder_unreadable":
        write_minimal_sweep(store, "b", keys=("k3",))
        bad = store / "metrics" / "sweep=b"
        bad.chmod(0)
        return str(bad)
    if case == "fragment_unreadable":
        good.chmod(0)
        return str(good)
    if case == "sweep_folder_is_a_file":
        bad = store / "metrics" / "sweep=c"
        bad.write_bytes(b"x")
        return str(bad)
    raise AssertionError(case)


@pytest.mark.parametrize("case", LOCAL_ONLY)
def test_local_store_links_and_permissions(open_tmp, case, capsys):
    store = open_tmp / "store"
    _good_store(Local(open_tmp))
    bad = _damage_local(open_tmp, store, case)
    s = open_store(store)
    with _as_nobody(), _fresh_reports() as caught:
        metrics = sorted(zip(*s.metrics().select(["key", "step"]).to_pydict().values()))
        trials = s.trials(sweep="a").column("key").to_pylist()
        api = _mentions(caught, bad)
        code = main(["store", "check", "--store", str(store)])
        out, _ = capsys.readouterr()
        fragments._reported.clear()
        status = main(["status", "--store", str(store)])
        _, err = capsys.readouterr()
    assert api == 1, [str(w.message) for w in caught]
    assert _stderr_mentions(err, bad) <= 1, err
    assert "k9" not in {k for k, _ in metrics}, "data from outside the store was read"
    if case == "fragment_unreadable":
        assert ("k1", 10) not in metrics and ("k2", 10) in metrics
    else:
        assert [m for m in metrics if m[0] in GOOD_KEYS] == GOOD_STEPS
    assert trials == GOOD_KEYS
    assert code == 1 and f"DAMAGED {bad}" in out, out
    assert status == 0


def test_cli_reports_a_damaged_file_on_one_stderr_line(tmp_path):
    backend = Local(tmp_path)
    _good_store(backend)
    bad = _damage_content(backend, "null_key")
    out = subprocess.run([sys.executable, "-m", "equisweep.cli", "query", "a", "--final",
                          "--store", backend.uri, "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and bad in lines[0] and "nulls in required columns" in lines[0], \
        out.stderr
