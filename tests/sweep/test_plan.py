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


def test_optuna_trials_an_interrupted_run_left_running_continue_with_their_hparams(
        write_sweep, tmp_path):
    """A resumed Optuna sweep continues the draws its stopped driver handed out (same keys,
    so their checkpoints serve) instead of drawing new samples and orphaning them."""
    spec = load_spec(write_sweep())
    cell = spec.cells()[0]
    interrupted = spec.cell_trial(cell, {"lr": 2.0e-3})
    store = open_store(tmp_path / "store")
    with store.writer(spec.name) as w:
        w.add_trial(dict(_finished_row(spec.name, interrupted), status="running"))
    plan = plan_sweep(spec, store)
    assert len(plan.slots) == 2 * len(spec.cells())
    fixed = [s for s in plan.slots if s.hparams is not None]
    assert [spec.cell_trial(_cell(spec, s), s.hparams).key for s in fixed] == [interrupted.key]
    assert sum(s.cell_key == cell.key for s in plan.slots) == 2


def test_a_changed_task_or_training_never_counts_the_old_trials_as_done(write_sweep, tmp_path):
    """Finished trials count for a cell only on the same dataset and training setup, whether
    their rows carry the cell key or were written before rows did (matched by trial key)."""
    spec = load_spec(write_sweep())  # optuna, 2 samples per cell
    store = open_store(tmp_path / "store")
    with store.writer(spec.name) as w:
        for i, cell in enumerate(spec.cells()):
            for lr in (1.5e-3, 2.5e-3):
                row = _finished_row(spec.name, spec.cell_trial(cell, {"lr": lr}))
                w.add_trial(dict(row, cell_key=cell.key) if i % 2 else row)  # old and new rows
    assert plan_sweep(spec, store).done == 2 * len(spec.cells())
    assert plan_sweep(spec, store).slots == []
    task = dict(spec.raw["task"], delta=2)
    for changed in (load_spec(write_sweep(task=task)),
                    load_spec(write_sweep(training=dict(spec.raw["training"], batch_size=2)))):
        plan = plan_sweep(changed, store)
        assert plan.done == 0 and plan.prior == {}
        assert len(plan.slots) == 2 * len(changed.cells())
        assert plan.spent_flops == 0
