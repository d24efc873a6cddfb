"""Crash safety: partial writes stay invisible, damaged fragments are reported and skipped."""

from __future__ import annotations

import warnings

import pyarrow as pa
import pytest
from storehelp import metric, trial

from equisweep.store import DamagedFragmentWarning, location


def _frags(tmp_path, kind="metrics"):
    return sorted((tmp_path / "results" / kind).rglob("part-*.parquet"))


def _two_fragments(store):
    with store.writer("sw") as w:
        w.add_trial(trial("a"))
        w.add_metrics([metric("a", s) for s in range(1, 4)])
    with store.writer("sw") as w:
        w.add_trial(trial("b", status="finished"))
        w.add_metrics([metric("b", s) for s in range(1, 6)] + [metric("b", 6, test_loss=0.5)])


@pytest.mark.parametrize("store_uri", ["local"], indirect=True)  # damages files on disk
def test_unrenamed_temp_file_is_invisible(store, tmp_path):
    _two_fragments(store)
    # A writer that crashed after writing its temp file but before the rename.
    good = _frags(tmp_path)[0]
    tmp = good.parent / f".tmp-part-{'9' * 20}-dead.parquet"
    tmp.write_bytes(good.read_bytes())
    (good.parent / "_SUCCESS").write_text("")  # other tools' markers are ignored too
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.metrics().num_rows == 9
        assert store.final().num_rows == 2
    report = store.check()
    assert report.ok and report.good == 4 and report.leftovers == [tmp.as_posix()]
    assert "leftover temporary files" in str(report)


@pytest.mark.parametrize("store_uri", ["local"], indirect=True)  # damages files on disk
def test_crash_inside_write_leaves_nothing_visible(store, tmp_path, monkeypatch):
    _two_fragments(store)
    import equisweep.store.writer as wmod

    real = wmod.pq.ParquetWriter.write_table

    def dying(self, table, *a, **k):
        real(self, table.slice(0, 1), *a, **k)
        raise OSError("disk full")

    monkeypatch.setattr(wmod.pq.ParquetWriter, "write_table", dying)
    w = store.writer("sw")
    w.add_metrics([metric("c", 1), metric("c", 2)])
    with pytest.raises(OSError, match="disk full"):
        w.flush()
    assert store.metrics().num_rows == 9
    assert not list((tmp_path / "results").rglob(".tmp-*"))  # cleaned up
    monkeypatch.undo()
    w.close()  # the rows were kept and go out with the next flush
    assert store.metrics().num_rows == 11


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
@pytest.mark.parametrize("store_uri", ["local"], indirect=True)  # damages files on disk
def test_damaged_fragment_is_reported_and_skipped(store, tmp_path, damage):
    _two_fragments(store)
    bad = _frags(tmp_path)[1]  # trial b's metrics
    data = bad.read_bytes()
    bad.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"PAR1" + b"x" * 500,
                     "empty": b""}[damage])
    report = store.check()
    assert not report.ok and [d.path for d in report.damaged] == [bad.as_posix()]
    assert report.good == 3
    assert bad.as_posix() in str(report)
    with pytest.warns(DamagedFragmentWarning, match=bad.name):
        m = store.metrics()
    assert m.column("key").to_pylist() == ["a"] * 3
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        f = store.final()  # skipped again, but reported once per process
    assert not [w for w in again if bad.name in str(w.message)]
    assert f.column("key").to_pylist() == ["a", "b"]
    assert f.column("step").to_pylist() == [3, None]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert store.trials().num_rows == 2  # other kinds are unaffected


@pytest.mark.parametrize("store_uri", ["local"], indirect=True)  # damages files on disk
def test_damaged_data_with_intact_footer_is_caught_by_check(store, tmp_path):
    _two_fragments(store)
    bad = _frags(tmp_path)[1]
    data = bytearray(bad.read_bytes())
    for i in range(8, 200):  # scribble over the first data pages, keep the footer
        data[i] = 0xFF
    bad.write_bytes(bytes(data))
    report = store.check()
    assert [d.path for d in report.damaged] == [bad.as_posix()]
    with pytest.warns(DamagedFragmentWarning):
        assert store.metrics().column("key").to_pylist() == ["a"] * 3


@pytest.mark.parametrize("store_uri", ["local"], indirect=True)  # damages files on disk
def test_fragment_vanishing_mid_read(store, tmp_path, monkeypatch):
    _two_fragments(store)
    real = location.list_files

    def listing_with_ghost(*a, **k):
        out = real(*a, **k)
        if out and out[0].path.endswith(".parquet"):
            out.append(location.Fragment(out[0].sweep, out[0].path[:-8] + "-gone.parquet"))
        return out

    monkeypatch.setattr(location, "list_files", listing_with_ghost)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a vanished file is not damage: no warning
        assert store.metrics().num_rows == 9
        assert store.final().column("step").to_pylist() == [3, 6]
        assert store.trials().num_rows == 2


@pytest.mark.parametrize("store_uri", ["local"], indirect=True)  # damages files on disk
def test_schema_evolution_missing_columns_read_as_null(store, tmp_path):
    import pyarrow.parquet as pq

    d = tmp_path / "results" / "metrics" / "sweep=old"
    d.mkdir(parents=True)
    pq.write_table(pa.table({"key": ["k"], "attempt": [1], "step": [3], "_seq": [1]}),
                   d / "part-00000000000000000001-x.parquet")
    m = store.metrics("old")
    assert m.column("step").to_pylist() == [3] and m.column("train_loss").null_count == 1
    assert store.check().ok
