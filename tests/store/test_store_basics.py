"""Opening stores, path safety, writer buffering, readers, sweep metadata."""

from __future__ import annotations

import datetime as dt
import json
import math

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest
from storehelp import metric, part_files, stored_files, trial

from equisweep.errors import UserError
from equisweep.store import FINAL_SCHEMA, METRIC_SCHEMA, TRIAL_SCHEMA, open_store


@pytest.mark.parametrize("name", ["", "a/b", "..", "a..b", "../x", ".hidden", "-x", "a b",
                                  "x/../../etc", None, 3])
def test_bad_sweep_names_are_user_errors_naming_them(store, name):
    with pytest.raises(UserError, match="invalid sweep name") as exc:
        store.writer(name)
    assert repr(name) in str(exc.value)
    with pytest.raises(UserError):
        store.write_sweep_meta(name, {})
    if name is not None:  # None means "every sweep" to readers
        for read in (store.metrics, store.trials, store.final, store.done_keys):
            with pytest.raises(UserError):
                read(name)


@pytest.mark.parametrize("name", ["quickstart", "Study.v2", "a_b-c.1", "0"])
def test_good_sweep_names(store, name):
    with store.writer(name) as w:
        w.add_trial(trial("k"))
    assert store.sweeps() == [name]
    assert store.trials(name).column("sweep").to_pylist() == [name]


def test_store_path_that_is_a_file_names_it(tmp_path):
    f = tmp_path / "results"
    f.write_text("not a store")
    with pytest.raises(UserError, match=str(f)) as exc:
        open_store(f)
    assert "is a file" in str(exc.value)
    with pytest.raises(UserError, match="is a file"):
        open_store(f.as_uri())


def test_unknown_uri_and_missing_store(tmp_path):
    with pytest.raises(UserError, match="store URI not understood: nosuchfs://x"):
        open_store("nosuchfs://x/y")
    with pytest.raises(UserError, match=f"no results store at {tmp_path / 'nope'}"):
        open_store(tmp_path / "nope", must_exist=True)
    # Readers of a store that does not exist yet see empty, typed tables.
    empty = open_store(tmp_path / "nope")
    assert empty.trials().schema == TRIAL_SCHEMA
    assert empty.metrics().schema == METRIC_SCHEMA
    assert empty.final().schema == FINAL_SCHEMA
    assert empty.done_keys("x") == set() and empty.sweeps() == []


def test_file_uri_and_custom_filesystem(tmp_path):
    s = open_store((tmp_path / "r").as_uri())
    with s.writer("sw") as w:
        w.add_trial(trial("k", status="finished"))
        w.add_metrics([metric("k", 1)])
    # The same store read through a plain local path.
    assert open_store(tmp_path / "r").done_keys("sw") == {"k"}
    sub = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    s2 = open_store("r", filesystem=sub)
    assert s2.final("sw").column("step").to_pylist() == [1]


def test_mock_filesystem_uri():
    s = open_store("mock:///bucket/results")
    with s.writer("sw") as w:
        w.add_trial(trial("k"))
        w.add_metrics([metric("k", i) for i in range(3)])
    assert s.metrics().num_rows == 3
    assert s.check().good == 2


def test_layout_is_hive_partitioned_and_readable_by_pyarrow(filled):
    parquet = [p.split("/") for p in stored_files(filled) if p.endswith(".parquet")]
    assert {p[0] for p in parquet} == {"trials", "metrics"}
    assert {p[1] for p in parquet} == {"sweep=alpha", "sweep=beta"}
    for p in parquet:
        assert p[-1].startswith("part-") and len(p[-1].split("-")) == 3
    # What pandas/DuckDB do: read the folder with hive partitioning.
    raw = ds.dataset(f"{filled.root}/metrics", filesystem=filled.filesystem, format="parquet",
                     partitioning="hive").to_table()
    assert raw.num_rows == 11 and "sweep" in raw.column_names


def test_rows_are_validated_at_add(store):
    w = store.writer("sw")
    with pytest.raises(ValueError, match="unknown metric column 'loss'"):
        w.add_metrics([{"key": "k", "attempt": 1, "step": 1, "loss": 0.1}])
    with pytest.raises(ValueError, match="missing required column 'step'"):
        w.add_metrics([{"key": "k", "attempt": 1}])
    with pytest.raises(ValueError, match="status"):
        w.add_trial(trial("k", status="done"))
    with pytest.raises(TypeError, match="'step' expects an integer"):
        w.add_metrics([metric("k", 1.5)])
    with pytest.raises(ValueError, match="given to the writer of .sw."):
        w.add_metrics([dict(metric("k", 1), sweep="other")])
    w.close()
    assert store.metrics().num_rows == 0


def test_values_round_trip(store):
    t0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
    with store.writer("sw") as w:
        w.add_trial(trial("k", started_at=t0, ended_at=t0.timestamp() + 60.0,
                          size={"depth": 2, "width": 8}))
        w.add_metrics([metric("k", 1, val_loss=float("nan"), lr=1e-3)])
    t = store.trials("sw").to_pylist()[0]
    assert t["started_at"] == t0 and t["ended_at"] == t0 + dt.timedelta(seconds=60)
    assert json.loads(t["size"]) == {"depth": 2, "width": 8}
    m = store.metrics("sw").to_pylist()[0]
    assert math.isnan(m["val_loss"]) and m["lr"] == 1e-3 and m["samples"] == 16
    assert m["grad_norm"] is None


def test_writer_flushes_by_rows_time_and_close(store, monkeypatch):
    frags = lambda: part_files(store)
    w = store.writer("sw", max_rows=5, max_delay_s=1000)
    w.add_metrics([metric("k", i) for i in range(4)])
    assert frags() == [] and store.metrics().num_rows == 0
    w.add_metrics([metric("k", 4)])
    assert len(frags()) == 1 and store.metrics().num_rows == 5
    # By age: the clock moves past max_delay_s since the first buffered row.
    import equisweep.store.writer as wmod

    now = [wmod.time.monotonic()]
    monkeypatch.setattr(wmod.time, "monotonic", lambda: now[0])
    w.max_delay_s = 5.0
    w.add_metrics([metric("k", 10)])
    assert len(frags()) == 1
    now[0] += 5.1
    w.add_metrics([metric("k", 11)])
    assert len(frags()) == 2 and store.metrics().num_rows == 7
    w.add_trial(trial("k"))
    w.close()
    assert store.trials().num_rows == 1
    with pytest.raises(RuntimeError, match="closed"):
        w.add_trial(trial("k"))


def test_bulk_table_add_and_trials_list(store):
    table = pa.table({"key": ["k"] * 3, "attempt": [1, 1, 1], "step": [1, 2, 3],
                      "train_loss": [0.3, 0.2, 0.1]})
    with store.writer("sw") as w:
        w.add_metrics(table)
        w.add_trials([trial("k"), trial("k", status="finished")])
        with pytest.raises(ValueError, match="unknown metric column 'bogus'"):
            w.add_metrics(table.append_column("bogus", pa.array([1, 2, 3])))
    assert store.metrics().column("train_loss").to_pylist() == [0.3, 0.2, 0.1]
    assert store.done_keys("sw") == {"k"}


def test_readers(filled):
    t = filled.trials()
    assert [(r["sweep"], r["key"], r["status"]) for r in t.to_pylist()] == [
        ("alpha", "a", "finished"), ("alpha", "b", "failed"), ("alpha", "c", "running"),
        ("beta", "a", "diverged")]
    assert filled.trials("alpha").column("error").to_pylist() == [None, "boom", None]
    assert filled.done_keys("alpha") == {"a"} and filled.done_keys("beta") == set()
    assert filled.sweeps() == ["alpha", "beta"]
    m = filled.metrics("alpha")
    assert m.num_rows == 10 and m.schema == METRIC_SCHEMA
    assert m.column("step").to_pylist() == [1, 2, 3, 4, 5, 1, 2, 1, 2, 3]
    f = filled.final()
    assert f.schema == FINAL_SCHEMA
    rows = {(r["sweep"], r["key"]): r for r in f.to_pylist()}
    assert rows["alpha", "a"]["step"] == 5 and rows["alpha", "a"]["test_loss"] == 0.05
    assert rows["alpha", "b"]["step"] == 2 and rows["alpha", "b"]["test_loss"] is None
    assert rows["alpha", "c"]["family"] == "transformer" and rows["alpha", "c"]["steps"] == 800
    assert rows["beta", "a"]["flops"] == 7e6 and rows["beta", "a"]["status"] == "diverged"
    # where on each reader
    assert filled.metrics(where="key == 'a' and step >= 4").num_rows == 2
    assert filled.metrics(where="train_loss < 0.3 and sweep == 'alpha'").num_rows == 4
    assert filled.final(where="family == 'gatr' and status != 'failed'").num_rows == 2
    assert filled.trials(where="steps >= 800").column("key").to_pylist() == ["c"]


def test_trial_without_metrics_still_has_a_final_row(store):
    with store.writer("sw") as w:
        w.add_trial(trial("lonely"))
    f = store.final("sw")
    assert f.num_rows == 1 and f.column("step").to_pylist() == [None]


def test_sweep_meta_newest_wins(store):
    assert store.read_sweep_meta("sw") is None
    store.write_sweep_meta("sw", {"budget": {"flops": 1.0}})
    store.write_sweep_meta("sw", {"budget": {"flops": 2.0}, "spec": {"name": "sw"}})
    assert store.read_sweep_meta("sw")["budget"] == {"flops": 2.0}
    assert store.sweeps() == ["sw"]
    files = stored_files(store, "sweeps/sweep=sw")
    assert len(files) == 2 and all(f.rsplit("/", 1)[-1].startswith("meta-") for f in files)
    with store.filesystem.open_output_stream(f"{store.root}/{files[-1]}") as out:
        out.write(b"{truncated")
    with pytest.warns(UserWarning, match="damaged"):
        assert store.read_sweep_meta("sw")["budget"] == {"flops": 1.0}
    with pytest.raises(ValueError):
        store.write_sweep_meta("sw", {"x": float("nan")})


def test_bulk_rows_of_another_sweep_are_rejected(store):
    table = pa.table({"sweep": ["sw", "other"], "key": ["k", "k"], "attempt": [1, 1],
                      "step": [1, 2]})
    with store.writer("sw") as w:
        with pytest.raises(ValueError, match="another sweep"):
            w.add_metrics(table)
        w.add_metrics(table.slice(0, 1))
    assert store.metrics().column("sweep").to_pylist() == ["sw"]


def test_metrics_sorted_across_key_major_fragments(store):
    # Long per-key runs in several fragments: the reader stitches zero-copy slices.
    with store.writer("sw") as w:
        for part in range(3):
            keys = [f"k{part}", f"k{part + 3}"]
            w.add_metrics([metric(k, s) for s in range(200) for k in keys])
            w.flush()
        w.add_metrics([metric("k1", 5, attempt=2, train_loss=-1.0)])
    m = store.metrics()
    pairs = list(zip(m.column("key").to_pylist(), m.column("step").to_pylist()))
    assert pairs == sorted((f"k{i}", s) for i in range(6) for s in range(200))
    assert m.filter(pc.field("train_loss") == -1.0).column("step").to_pylist() == [5]
