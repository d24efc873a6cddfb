"""The searcher never schedules a trial key that already finished or is in flight.

Raising `samples_per_cell` on a finished sweep continues each cell's (or WSD group's) study:
its seeded sampler would otherwise replay the first run's draws, whose keys are done.
The trials here are driven without Ray: suggest, then report a result, as Tune would.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from ray.tune.search import Searcher

from equisweep.spec import parse_spec
from equisweep.store import open_store
from equisweep.sweep.plan import plan_sweep
from equisweep.sweep.searcher import CellSearcher
from tests.sweep.conftest import tiny_sweep_dict

SEARCHES = {
    "optuna": {"method": "optuna", "params": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}}},
    "optuna-choice": {"method": "optuna", "params": {"lr": {"choice": [1e-3, 2e-3, 3e-3]}}},
    "random": {"method": "random", "params": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}}},
    "grid": {"method": "grid"},  # `samples` choices of lr
}


def _spec(store, search: str, samples: int, wsd: bool = False):
    d = tiny_sweep_dict("resample", search={**SEARCHES[search], "samples_per_cell": samples})
    if search == "grid":
        d["search"] = {"method": "grid", "samples_per_cell": 1,
                       "params": {"lr": {"choice": [1e-3, 2e-3, 3e-3][:samples]}}}
    if wsd:
        d["grid"] = {"steps": [20, 40], "train_trajectories": [8], "seed": [0]}
        d["training"] = {**d["training"], "schedule": "wsd", "cooldown": 0.25}
    d["store"] = str(store)
    return parse_spec(d, source="resample.yaml")


def _drive(spec, store) -> list[str]:
    """Plan and run the sweep's suggestions to the end, writing each as finished; the keys
    suggested, in order."""
    plan = plan_sweep(spec, store)
    searcher = CellSearcher(spec, plan.slots, plan.prior, done_keys=plan.done_keys)
    keys, n = [], 0
    with store.writer(spec.name) as w:
        while True:
            payload = searcher.suggest(f"t{n}")
            if payload == Searcher.FINISHED:
                break
            assert payload is not None  # WSD branches: their trunk has ended (below)
            trial, n = payload["trial"], n + 1
            loss = 1.0 + (hash(payload["key"]) % 1000) / 1000
            w.add_trial(_finished_row(spec.name, payload, trial))
            w.add_metrics([{"key": payload["key"], "attempt": 1, "step": trial["steps"],
                            "samples": 4 * trial["steps"], "flops": 1.0, "train_loss": loss,
                            "val_loss": loss}])
            searcher.on_trial_complete(f"t{n - 1}", {"status": "finished", "val_loss": loss})
            keys.append(payload["key"])
    return keys


def _finished_row(sweep, payload, t):
    now = datetime.now(timezone.utc)
    return {"sweep": sweep, "key": payload["key"], "family": t["family"],
            "size": json.dumps(t["size"], sort_keys=True), "n_params": payload["n_params"],
            "flops_per_step": payload["flops_per_step"], "steps": t["steps"],
            "train_trajectories": t["train_trajectories"], "augment": t["augment"],
            "seed": t["seed"], "hparams": json.dumps(t["hparams"], sort_keys=True),
            "config": json.dumps(t, sort_keys=True), "status": "finished", "attempt": 1,
            "node": "test", "error": "", "started_at": now, "ended_at": now}


@pytest.mark.parametrize("wsd", [False, True], ids=["cosine", "wsd"])
@pytest.mark.parametrize("search", ["optuna", "optuna-choice", "random", "grid"])
def test_more_samples_per_cell_schedule_only_new_keys(tmp_path, search, wsd):
    store = open_store(tmp_path / "store")
    first = _drive(_spec(tmp_path / "store", search, 1, wsd), store)
    n_cells = len(_spec(tmp_path / "store", search, 1, wsd).cells())
    assert len(first) == len(set(first)) == n_cells
    more = _spec(tmp_path / "store", search, 3, wsd)
    second = _drive(more, store)
    assert not set(second) & set(first), "a finished trial was scheduled again"
    assert len(second) == len(set(second))
    if search != "random":  # random draws that coincide are kept once (by design)
        assert len(second) == 2 * n_cells
    rows = store.trials(sweep="resample").to_pylist()
    assert sorted(r["key"] for r in rows) == sorted(first + second)  # each once
    # Done means done: a third submission schedules nothing.
    assert _drive(more, store) == []


def test_a_finite_space_that_is_used_up_schedules_nothing_twice(tmp_path):
    """Three choices, five samples asked: the cell runs each choice once, never a repeat."""
    store = open_store(tmp_path / "store")
    keys = _drive(_spec(tmp_path / "store", "optuna-choice", 5), store)
    assert len(keys) == len(set(keys)) == 3 * 2  # 2 cells
    assert _drive(_spec(tmp_path / "store", "optuna-choice", 6), store) == []


@pytest.mark.slow
def test_resubmitted_with_more_samples_on_ray_reruns_no_finished_trial(ray_session, tmp_path):
    from equisweep.sweep.driver import run_sweep
    from tests.reliability.conftest import raw_rows

    store_path = tmp_path / "store"
    first = run_sweep(_spec(store_path, "optuna", 1), store_uri=str(store_path), progress=False)
    assert first["to_run"] == 2 and first["errors"] == 0
    before = raw_rows(store_path, "trials")
    done = {r["key"] for r in before}
    metrics_before = raw_rows(store_path, "metrics")

    again = run_sweep(_spec(store_path, "optuna", 2), store_uri=str(store_path), progress=False)
    assert again["already_done"] == 2 and again["to_run"] == 2 and again["errors"] == 0
    after = raw_rows(store_path, "trials")
    # The finished trials' rows are exactly those of the first run: none re-ran.
    key = lambda r: (r["key"], r["attempt"], r["status"])  # noqa: E731
    assert sorted(map(key, (r for r in after if r["key"] in done))) == sorted(map(key, before))
    assert sorted((r["key"], r["step"]) for r in raw_rows(store_path, "metrics")
                  if r["key"] in done) == sorted((r["key"], r["step"]) for r in metrics_before)
    rows = open_store(store_path).trials(sweep="resample").to_pylist()
    assert len(rows) == 4 and {r["status"] for r in rows} == {"finished"}
    assert len({r["key"] for r in rows} - done) == 2  # the new samples are new keys


def _planned_and_spent(store_path, sweep):
    store = open_store(store_path)
    return store.read_sweep_meta(sweep)["planned_flops"], store.flops_spent(sweep)[sweep]


@pytest.mark.slow
def test_a_finished_sweep_spent_exactly_the_training_flops_it_planned(ray_session, tmp_path):
    """Nothing cut, nothing failed: the plan (steps at their batches' padded lengths, not at
    the largest possible scene) is what the trainers counted, on the first submission and,
    cumulatively, on a resubmission with more samples."""
    from equisweep.sweep.driver import run_sweep

    store_path = tmp_path / "store"
    spec = _spec(store_path, "optuna", 1)
    summary = run_sweep(spec, store_uri=str(store_path), progress=False)
    assert summary["errors"] == 0
    planned, spent = _planned_and_spent(store_path, "resample")
    assert spent == pytest.approx(planned, rel=1e-12)
    assert summary["planned_flops"] == pytest.approx(planned, rel=1e-12)
    # The spec's per-step count is a bound (every step at the largest scene).
    assert spent < sum(t.flops for t in spec.cells())
    again = run_sweep(_spec(store_path, "optuna", 2), store_uri=str(store_path),
                      progress=False)
    assert again["errors"] == 0 and again["spent_flops"] == pytest.approx(spent, rel=1e-12)
    planned, spent = _planned_and_spent(store_path, "resample")
    assert spent == pytest.approx(planned, rel=1e-12)
