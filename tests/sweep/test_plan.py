"""Planning without Ray: resubmission skips finished keys, the budget cuts in spec order."""

from __future__ import annotations

from equisweep.spec import load_spec
from equisweep.store import open_store
from equisweep.sweep.plan import plan_sweep


def _grid(**kw):
    return {"method": "grid", "samples_per_cell": 1,
            "params": {"lr": {"choice": [1.0e-3, 3.0e-3]}}, **kw}


def test_budget_cuts_in_spec_order(write_sweep, tmp_path):
    spec = load_spec(write_sweep(search=_grid()))
    trials = spec.trials()
    assert len(trials) == 4
    costs = [t.total_flops for t in trials]
    # Room for the first two trials and not the third.
    budget = costs[0] + costs[1] + 0.5 * costs[2]
    spec = load_spec(write_sweep(search=_grid(), budget={"flops": budget}))
    plan = plan_sweep(spec, open_store(tmp_path / "store"))
    expected, total = [], 0.0
    for t in trials:
        if total + t.total_flops <= budget:
            expected.append(t.key)
            total += t.total_flops
    assert [spec.cell_trial(_cell(spec, s), s.hparams).key for s in plan.slots] == expected
    assert plan.skipped_budget == 4 - len(expected)
    assert plan.planned_flops <= budget


def test_optuna_plan_counts_samples_per_cell(write_sweep, tmp_path):
    spec = load_spec(write_sweep())
    plan = plan_sweep(spec, open_store(tmp_path / "store"))
    assert len(plan.slots) == 2 * len(spec.cells())
    assert all(s.hparams is None for s in plan.slots)


def test_resubmission_skips_finished_keys(write_sweep, tmp_path):
    spec = load_spec(write_sweep(search=_grid()))
    store = open_store(tmp_path / "store")
    first = spec.trials()[0]
    with store.writer(spec.name) as w:
        w.add_trial(_finished_row(spec.name, first))
    plan = plan_sweep(spec, store)
    assert plan.done == 1
    keys = [spec.cell_trial(_cell(spec, s), s.hparams).key for s in plan.slots]
    assert first.key not in keys and len(keys) == 3


def _cell(spec, slot):
    return next(c for c in spec.cells() if c.key == slot.cell_key)


def _finished_row(sweep, t):
    import json
    from datetime import datetime, timezone

    now = datetime.now(timezone.utc)
    return {"sweep": sweep, "key": t.key, "family": t.family,
            "size": json.dumps(t.size, sort_keys=True), "n_params": t.n_params,
            "flops_per_step": t.flops_per_step, "steps": t.steps,
            "train_trajectories": t.train_trajectories, "augment": t.augment, "seed": t.seed,
            "hparams": json.dumps(t.hparams, sort_keys=True),
            "config": json.dumps(t.to_dict(), sort_keys=True), "status": "finished",
            "attempt": 1, "node": "test", "error": "", "started_at": now, "ended_at": now}


def test_planning_never_imports_ray(write_sweep):
    """Ray is imported only once there is something to run: a resubmitted, finished sweep
    starts no cluster, and `--address` can still switch Ray's client to token mode."""
    import subprocess
    import sys

    path = write_sweep()
    code = ("import sys; from equisweep.spec import load_spec; "
            "from equisweep.sweep.plan import plan_sweep; from equisweep.store import open_store; "
            f"s = load_spec({str(path)!r}); plan_sweep(s, open_store(s.store)); "
            "import equisweep.sweep.driver; print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
