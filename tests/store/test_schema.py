"""The one trial/metric schema: typed hp_/size_ columns derived from the JSON they copy,
rows the driver's callback writes, and old stores written before the typed columns existed."""

from __future__ import annotations

import json
import types

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storehelp import metric, trial

from equisweep.spec import HPARAM_DEFAULTS, parse_spec
from equisweep.store import TRIAL_SCHEMA, open_store
from equisweep.store.schema import HP_COLUMNS, REPORTED_METRICS, SIZE_COLUMNS, trial_row
from tests.sweep.conftest import tiny_sweep_dict


def test_a_typed_column_per_searchable_hparam_and_shared_size_key():
    assert set(HP_COLUMNS.values()) == set(HPARAM_DEFAULTS)
    for col in HP_COLUMNS:
        assert TRIAL_SCHEMA.field(col).type == pa.float64()
    for col in SIZE_COLUMNS:
        assert TRIAL_SCHEMA.field(col).type == pa.int64()


def test_every_family_has_the_size_keys_that_are_columns():
    from equisweep.models import FAMILIES

    for name, fam in FAMILIES.items():
        assert set(SIZE_COLUMNS.values()) <= set(fam.size_keys), name


@settings(max_examples=50, deadline=None)
@given(hp=st.fixed_dictionaries({}, optional={
    k: st.floats(1e-6, 0.99, allow_nan=False) for k in HPARAM_DEFAULTS}),
    width=st.integers(1, 512), depth=st.integers(1, 64), as_text=st.booleans())
def test_typed_columns_copy_the_json(hp, width, depth, as_text):
    size = {"width": width, "depth": depth, "heads": 2}
    row = trial("k", size=json.dumps(size) if as_text else size,
                hparams=json.dumps(hp) if as_text else hp)
    out = trial_row(row, "s")
    assert out["size_width"] == width and out["size_depth"] == depth
    for col, name in HP_COLUMNS.items():
        assert out.get(col) == hp.get(name)
    assert json.loads(out["hparams"]) == hp  # the JSON column is encoded once


@pytest.fixture
def lr_store(store):
    with store.writer("lr") as w:
        for i, lr in enumerate((1e-4, 3e-3, 1e-2)):
            w.add_trial(trial(f"t{i}", status="finished", hparams={"lr": lr, "warmup": 0.05},
                              equivariant=i < 2))
            w.add_metrics([metric(f"t{i}", 1, val_loss=0.5 + i)])
    return store


def test_where_and_final_see_hp_columns(lr_store):
    keys = lr_store.trials("lr", where="hp_lr > 1e-3").column("key").to_pylist()
    assert keys == ["t1", "t2"]
    final = lr_store.final("lr", where="hp_lr <= 1e-3 and size_width == 8")
    assert final.column("key").to_pylist() == ["t0"]
    assert final.column("hp_warmup").to_pylist() == [0.05]
    picked = lr_store.final("lr", where="equivariant and hp_lr > 1e-3")  # the --help example
    assert picked.column("key").to_pylist() == ["t1"]


def test_query_table_shows_searched_hparams_and_json_is_nested(lr_store, run_cli):
    rc, out, _ = run_cli("query", "lr", "--store", lr_store.uri, "--final",
                         "--where", "hp_lr > 1e-3")
    assert rc == 0
    header = out.splitlines()[0].split()
    assert "hp_lr" in header and "hp_warmup" not in header  # warmup is the same everywhere
    rc, out, _ = run_cli("query", "lr", "--store", lr_store.uri, "--trials", "--format", "json")
    rows = json.loads(out)
    assert rows[0]["hparams"] == {"lr": 1e-4, "warmup": 0.05}
    assert rows[0]["size"] == {"depth": 2, "width": 8} and rows[0]["hp_lr"] == 1e-4


def test_table_shows_the_hparams_the_stored_spec_searches(lr_store, run_cli):
    lr_store.write_sweep_meta("lr", {"name": "lr", "spec": {"search": {"params": {
        "weight_decay": {"choice": [0.0, 0.1]}, "warmup": 0.05}}}})
    for argv in (["query", "lr", "--final", "--where", "hp_lr > 1e-3"], ["best", "lr"]):
        rc, out, err = run_cli(*argv, "--store", lr_store.uri)
        header = out.splitlines()[0].split()
        assert rc == 0, err
        # searched (even where every row has the same value) yes; fixed or default no
        assert "hp_weight_decay" in header and "hp_lr" not in header, argv


def test_store_written_before_the_typed_columns_still_reads(store):
    """A fragment with the old trial schema: the typed columns are derived from its JSON."""
    old = [f for f in TRIAL_SCHEMA if f.name != "sweep" and not f.name.startswith(
        ("hp_", "size_")) and f.name != "equivariant"] + [pa.field("_seq", pa.int64(), False)]
    rows = {"key": ["a"], "family": ["gatr"], "size": [json.dumps({"width": 4, "depth": 1})],
            "hparams": [json.dumps({"lr": 0.002})], "status": ["finished"], "attempt": [1],
            "_seq": [1]}
    table = pa.table({f.name: pa.array(rows.get(f.name, [None]), f.type) for f in old},
                     schema=pa.schema(old))
    folder = f"{store.root}/trials/sweep=old"
    store.filesystem.create_dir(folder, recursive=True)
    pq.write_table(table, f"{folder}/part-00000000000000000001-x.parquet",
                   filesystem=store.filesystem)
    t = store.trials("old")
    assert t.schema == TRIAL_SCHEMA
    assert t.column("hp_lr").to_pylist() == [0.002] and t.column("size_width").to_pylist() == [4]
    assert t.column("hp_warmup").to_pylist() == [None]  # not recorded: stays unknown
    assert t.column("equivariant").to_pylist() == [None]
    assert store.trials("old", where="hp_lr > 1e-3").num_rows == 1
    assert store.check().ok  # an old fragment is not a damaged one


def test_callback_rows_are_the_schema(tmp_path):
    """The driver's callback writes exactly the schema's columns, from the trial payload."""
    from equisweep.sweep.callback import StoreCallback
    from equisweep.sweep.searcher import trial_payload

    spec = parse_spec(tiny_sweep_dict())
    t = spec.cell_trial(spec.cells()[0], {"lr": 2e-3})
    fake = types.SimpleNamespace(trial_id="x", num_failures=0,
                                 config=trial_payload(t, data_dir=None))
    cb = StoreCallback(str(tmp_path / "results"), "cb", progress=False)
    cb.on_trial_start(0, [], fake)
    result = dict.fromkeys(REPORTED_METRICS, 1.0) | {"step": 3, "status": "finished"}
    cb.on_trial_result(0, [], fake, result)
    cb.on_trial_complete(0, [], fake)
    cb.on_experiment_end([])
    store = open_store(tmp_path / "results")
    row = store.trials("cb").to_pylist()[0]
    assert row["key"] == t.key and row["status"] == "finished"
    assert row["equivariant"] is t.equivariant
    assert row["hp_lr"] == 2e-3 and row["size_width"] == t.size["width"]
    assert json.loads(row["config"]) == t.to_dict()
    m = store.metrics("cb").to_pylist()[0]
    assert all(m[c] is not None for c in REPORTED_METRICS)
