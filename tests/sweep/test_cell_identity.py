"""A sweep resubmitted under the same name with another `task.delta`, then with another
`training` field, plans and trains its new cells (Optuna would otherwise count the old
dataset's trials as done), stores the cell key on every trial row, and no tuned cell of
the analysis mixes two datasets or training setups."""

from __future__ import annotations

import pytest

from equisweep.analysis.data import load_sweep
from equisweep.analysis.tuned import select
from equisweep.spec import parse_spec
from equisweep.store import open_store
from equisweep.sweep.driver import run_sweep
from equisweep.sweep.plan import plan_sweep
from tests.sweep.conftest import tiny_sweep_dict

pytestmark = pytest.mark.slow


def test_changed_task_or_training_trains_new_cells_and_never_mixes_them(ray_session,
                                                                       tmp_path):
    store_path = tmp_path / "store"
    base = tiny_sweep_dict("same-name", store=str(store_path),
                           families={"transformer": {"sizes": [{"width": 8, "depth": 1}]}},
                           search={"method": "optuna", "samples_per_cell": 1,
                                   "params": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}}})
    versions = [base,
                dict(base, task=dict(base["task"], delta=2)),
                dict(base, training=dict(base["training"], batch_size=2))]
    cell_keys = []
    for i, d in enumerate(versions):
        spec = parse_spec(d, source="same-name.yaml")
        plan = plan_sweep(spec, open_store(store_path))
        assert (plan.done, len(plan.slots)) == (0, 1), f"version {i}"
        summary = run_sweep(spec, store_uri=str(store_path), progress=False)
        assert summary["to_run"] == 1 and summary["errors"] == 0
        assert not summary["unfinished"]
        cell_keys.append(spec.cells()[0].key)
        again = plan_sweep(spec, open_store(store_path))  # now done: nothing left
        assert (again.done, len(again.slots)) == (1, 0)
    assert len(set(cell_keys)) == 3

    store = open_store(store_path)
    trials = store.trials(sweep="same-name").to_pylist()
    assert sorted(r["cell_key"] for r in trials) == sorted(cell_keys)
    assert sorted(r["status"] for r in trials) == ["finished"] * 3
    assert len({r["dataset"] + str(r["delta"]) for r in trials}) == 2  # delta 1 and 2

    data = load_sweep(store, "same-name")
    _, records = select(data.final)
    assert len(records) == 3  # one grid point, three cells: nothing competes across them
    final = data.final.set_index("key")
    for rec in records:
        members = final.loc[rec["candidates"]]
        assert members["cell_key"].nunique() == 1 and members["dataset"].nunique() == 1
