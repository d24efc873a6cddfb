"""A run is checked against the store: every trial it should have ended is finished,
failed or diverged there, or it is named and the command exits non-zero."""

from __future__ import annotations

from types import SimpleNamespace

from equisweep.spec import load_spec
from equisweep.store import open_store
from equisweep.sweep import reconcile
from equisweep.sweep.cli_run import exit_code
from equisweep.sweep.plan import plan_sweep
from tests.sweep.test_plan import _finished_row, _grid


def test_planned_trials_not_ended_in_the_store_are_named_and_fail_the_command(
        write_sweep, tmp_path, capsys):
    spec = load_spec(write_sweep(search=_grid()))
    store = open_store(tmp_path / "store")
    plan = plan_sweep(spec, store)  # 4 grid trials, keys fixed in advance
    done, running, diverged, never = spec.trials()
    with store.writer(spec.name) as w:
        w.add_trial(_finished_row(spec.name, done))
        w.add_trial(dict(_finished_row(spec.name, running), status="running"))
        w.add_trial(dict(_finished_row(spec.name, diverged), status="diverged"))
    # Tune said it ran only what it ran: `never` was planned, but no trial of it started.
    results = [SimpleNamespace(config={"key": t.key}) for t in (done, running, diverged)]
    left = reconcile.unfinished(store, spec, plan, results)
    assert left == sorted([running.key, never.key])
    assert reconcile.attempts(store, spec.name) == {done.key: 1, running.key: 1,
                                                    diverged.key: 1}

    summary = {"sweep": spec.name, "store": str(tmp_path / "store"), "to_run": 4,
               "errors": 0, "unfinished": left}
    assert exit_code(summary) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and running.key in err[0] and never.key in err[0]
    assert f"equisweep resume {spec.name}" in err[0]
    assert exit_code(dict(summary, unfinished=[])) == 0
