"""`training.stack` without Ray: which trials share a stack (`sweep.stacking.stacks`, the one
function `run` and `validate` use), that stacking never changes a trial's identity, and that
the driver's bookkeeping (searcher, store callback, tally) treats each stack member as the
trial it is.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from equisweep.cli import main
from equisweep.spec import parse_spec
from equisweep.store import open_store
from equisweep.sweep.plan import fresh_plan
from equisweep.sweep.stacking import stack_payload, stacks
from equisweep.trainer.stack import check_stackable
from tests.sweep.conftest import tiny_sweep_dict

LRS = [1e-3, 2e-3, 3e-3, 5e-3, 8e-3]


def _spec(stack, *, lrs=3, method="grid", wsd=False, name="stk"):
    d = tiny_sweep_dict(name)
    d["training"] = dict(d["training"])
    if stack is not None:
        d["training"]["stack"] = stack
    if method == "grid":
        d["search"] = {"method": "grid", "params": {"lr": {"choice": LRS[:lrs]}}}
    else:
        d["search"] = {
            "method": "optuna",
            "samples_per_cell": lrs,
            "params": {"lr": {"loguniform": [1e-3, 1e-2]}},
        }
    if wsd:
        d["grid"] = {"steps": [20, 40], "train_trajectories": [8], "seed": [0]}
        d["training"].update(schedule="wsd", cooldown=0.25)
    return parse_spec(d, source=f"{name}.yaml")


@pytest.mark.parametrize("stack", ["auto", 2, 7])
def test_stacking_never_changes_a_cell_or_trial_key(stack):
    off, on = _spec(None), _spec(stack)
    assert off.stack == "off" and on.stack == stack
    assert [c.key for c in on.cells()] == [c.key for c in off.cells()]
    assert [t.key for t in on.trials()] == [t.key for t in off.trials()]
    assert all("stack" not in t.to_dict()["training"] for t in on.trials())


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 6), lrs=st.integers(1, 5), method=st.sampled_from(["grid", "optuna"]))
def test_stacks_partition_the_plan_into_stackable_groups_of_at_most_n(n, lrs, method):
    spec = _spec(n, lrs=lrs, method=method)
    slots = fresh_plan(spec).slots
    groups = stacks(spec, slots)
    assert sorted(i for g in groups for i in g) == list(range(len(slots)))
    cells = {c.key: c for c in spec.cells()}
    for g in groups:
        assert 1 <= len(g) <= n
        assert len({slots[i].cell_key for i in g}) == 1
        # The trainer accepts the group as one stack (for Optuna: any draws of the cell).
        check_stackable(
            [
                spec.cell_trial(
                    cells[slots[i].cell_key], slots[i].hparams or {"lr": 1e-3 * (1 + j)}
                ).to_dict()
                for j, i in enumerate(g)
            ]
        )
    # As few stacks as the cap allows: each cell's trials fill ceil(trials / n) stacks.
    per_cell = len(slots) // len(cells)
    assert len(groups) == len(cells) * -(-per_cell // n)


def test_off_auto_and_wsd():
    slots = fresh_plan(_spec("off")).slots
    assert stacks(_spec("off"), slots) == [[i] for i in range(len(slots))]
    auto = _spec("auto")
    assert stacks(auto, slots, memory=1e12) == [[0, 1, 2], [3, 4, 5]]  # one stack per cell
    assert stacks(auto, slots, memory=1.0) == [[i] for i in range(6)]  # nothing fits twice
    # WSD: a group's trunks stack; branches start alone from their own trunk's fork.
    wsd = _spec(3, wsd=True)
    wsd_slots = fresh_plan(wsd).slots
    groups = stacks(wsd, wsd_slots)
    trunk_groups = [g for g in groups if wsd_slots[g[0]].role == "trunk"]
    assert [len(g) for g in trunk_groups] == [3, 3]  # per family: its 3 lr samples
    assert all({wsd_slots[i].role for i in g} == {"trunk"} for g in trunk_groups)
    assert all(len(g) == 1 for g in groups if g not in trunk_groups)
    assert sorted(i for g in groups for i in g) == list(range(len(wsd_slots)))


def test_validate_says_how_trials_will_be_stacked(tmp_path, capsys):
    import yaml

    d = tiny_sweep_dict("val")
    d["training"] = dict(d["training"], stack=2)
    d["search"] = {"method": "grid", "params": {"lr": {"choice": LRS[:3]}}}
    path = tmp_path / "val.yaml"
    path.write_text(yaml.safe_dump(d))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "stacking 2: 6 trials train as 4 stacks of K trials each (K=2: 2, K=1: 2)" in out
    assert main(["validate", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["stacking"]["tune_trials"] == 4
    assert summary["stacking"]["stacks"] == {"2": 2, "1": 2}


# ---- the searcher: one Tune trial per stack, one Optuna trial per member ---------------------


def test_a_stack_asks_its_cell_once_per_member_and_tells_each_member(tmp_path):
    from ray.tune.search import Searcher

    from equisweep.sweep.searcher import CellSearcher

    spec = _spec(3, lrs=3, method="optuna")
    plan = fresh_plan(spec)
    searcher = CellSearcher(spec, plan.slots, plan.prior, stacks=stacks(spec, plan.slots))
    first = searcher.suggest("t0")
    assert len(first["stack"]) == 3 and "key" not in first
    assert len({m["key"] for m in first["stack"]}) == 3
    study = next(iter(searcher._studies.values()))
    import optuna

    # Asked three times, told nothing yet.
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.RUNNING] * 3
    searcher.on_trial_result("t0", {"member": 1, "status": "diverged", "val_loss": 0.5})
    searcher.on_trial_result("t0", {"member": 0, "status": "finished", "val_loss": 0.25})
    searcher.on_trial_result("t0", {"member": 0, "status": "finished", "val_loss": 0.3})
    states = [t.state for t in study.trials]
    assert states == [
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.FAIL,
        optuna.trial.TrialState.RUNNING,
    ]
    assert study.trials[0].value == 0.25  # told once, by its own member's result
    searcher.on_trial_complete("t0", {"member": 2, "status": "finished"}, error=True)
    assert study.trials[2].state == optuna.trial.TrialState.FAIL
    second = searcher.suggest("t1")
    assert len(second["stack"]) == 3
    assert searcher.suggest("t2") == Searcher.FINISHED


# ---- the store callback and the tally: each member is a trial --------------------------------


def _stack_trial(spec, tid="s0", failures=0):
    from equisweep.sweep.searcher import trial_payload

    payloads = [trial_payload(t, None) for t in spec.trials()[:3]]
    return SimpleNamespace(trial_id=tid, config=stack_payload(payloads), num_failures=failures)


def test_the_store_callback_files_every_member_as_its_own_trial_once(tmp_path):
    from equisweep.sweep.callback import StoreCallback

    spec = _spec(3)
    trial = _stack_trial(spec)
    keys = [m["key"] for m in trial.config["stack"]]
    cb = StoreCallback(str(tmp_path / "store"), spec.name, attempts={keys[2]: 1})

    def row(m, step, status="running", **kw):
        return {
            "member": m,
            "step": step,
            "train_loss": 0.1,
            "val_loss": 0.2,
            "flops": 1.0,
            "samples": 4 * step,
            "status": status,
            **kw,
        }

    cb.on_trial_start(0, [], trial)
    for m in range(3):
        cb.on_trial_result(0, [], trial, row(m, 10))
    cb.on_trial_result(0, [], trial, row(1, 15, "diverged", error="non-finite"))
    trial.num_failures = 1  # the stack's process dies; Tune retries it from step 10
    cb.on_trial_recover(0, [], trial)
    cb.on_trial_start(0, [], trial)
    for m in range(3):  # the retry re-reports member 1 until it diverges again: dropped
        cb.on_trial_result(0, [], trial, row(m, 20, "finished" if m != 1 else "running"))
    cb.on_trial_result(0, [], trial, row(1, 15, "diverged", error="non-finite"))
    cb.on_trial_complete(0, [], trial)
    cb.on_experiment_end([])

    store = open_store(tmp_path / "store")
    history = store.trials(sweep=spec.name)  # latest row per key
    status = {r["key"]: (r["status"], r["attempt"]) for r in history.to_pylist()}
    assert status == {keys[0]: ("finished", 2), keys[1]: ("diverged", 1), keys[2]: ("finished", 3)}
    steps = {}
    for r in store.metrics(sweep=spec.name).to_pylist():
        steps.setdefault(r["key"], []).append((r["step"], r["attempt"]))
    assert steps == {
        keys[0]: [(10, 1), (20, 2)],
        keys[1]: [(10, 1), (15, 1)],
        keys[2]: [(10, 2), (20, 3)],
    }


def test_the_tally_counts_members_as_trials():
    from equisweep.sweep.progress import SweepTally

    spec = _spec(3)
    trial = _stack_trial(spec)
    tally = SweepTally(total=3)
    tally.start(trial)
    assert len(tally.running) == 3
    for m in range(3):
        tally.result(trial, {"member": m, "step": 10, "flops": 1e6})
    assert tally.result(trial, {"member": 2, "step": 15, "flops": 2e6, "status": "diverged"}) == 1
    assert (
        tally.result(
            trial, {"member": 0, "step": 20, "flops": 3e6, "val_loss": 0.5, "status": "finished"}
        )
        == 1
    )
    assert (len(tally.running), tally.done, tally.diverged) == (1, 1, 1)
    tally.retry(trial)
    tally.start(trial)
    assert len(tally.running) == 1  # only the member still training comes back
    assert tally.end(trial, failed=True) == 1
    assert (tally.done, tally.diverged, tally.failed, len(tally.running)) == (1, 1, 1, 0)
    assert tally.spent_flops == 3e6 + 1e6 + 2e6


def test_stacked_wsd_trunks_each_keep_their_share_and_free_their_branches():
    """Optuna under WSD: a group's trunks are asked together, each for its own sample and
    listing its own branch as a fork; a member's final row ends its trunk, so that branch
    (no fork published here) is handed out alone, with its trunk's sample."""
    from ray.tune.search import Searcher

    from equisweep.sweep.searcher import CellSearcher

    spec = _spec(2, lrs=2, method="optuna", wsd=True)
    spec = parse_spec(
        dict(spec.raw, families={"transformer": {"sizes": [{"width": 8, "depth": 1}]}}),
        source="wsd.yaml",
    )
    plan = fresh_plan(spec)
    searcher = CellSearcher(spec, plan.slots, plan.prior, stacks=stacks(spec, plan.slots))
    trunks = searcher.suggest("t0")
    assert [m["wsd"]["role"] for m in trunks["stack"]] == ["trunk", "trunk"]
    lrs = [m["trial"]["hparams"]["lr"] for m in trunks["stack"]]
    assert lrs[0] != lrs[1]
    for m in trunks["stack"]:
        ((step, branch),) = m["wsd"]["forks"]
        assert step == 15 and m["wsd"]["trunk"] == m["key"]
    assert searcher.suggest("t1") is None  # branches wait for a fork or their trunk's end
    searcher.on_trial_result("t0", {"member": 1, "status": "finished", "val_loss": 0.1})
    branch = searcher.suggest("t1")
    assert "stack" not in branch and branch["trial"]["hparams"]["lr"] == lrs[1]
    assert branch["key"] == trunks["stack"][1]["wsd"]["forks"][0][1]
    assert branch["wsd"]["role"] == "standalone"  # its trunk ended without a fork here
    searcher.on_trial_complete("t0", {"member": 0, "status": "finished", "val_loss": 0.2})
    last = searcher.suggest("t2")
    assert last["trial"]["hparams"]["lr"] == lrs[0]
    assert searcher.suggest("t3") == Searcher.FINISHED
