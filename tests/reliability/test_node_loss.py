"""A worker node of a multi-node Ray cluster dies while its trials run: they are
rescheduled on the surviving nodes, resume from their checkpoints, and the sweep completes
with every step of every trial stored once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from equisweep.spec import parse_spec
from equisweep.store import open_store
from tests.reliability.conftest import free_port, raw_rows, wait_gone
from tests.reliability.helpers import assert_curve_matches, reference_rows
from tests.reliability.node_loss_script import sweep

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _node_loss(store: Path, *extra: str) -> tuple[dict, list[dict]]:
    """Run node_loss_script; its report, and the store's raw trial rows."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.node_loss_script", str(store), str(port),
         *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    try:
        out, err = proc.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"node-loss script timed out:\n{err[-3000:]}") from None
    finally:
        leftovers = wait_gone(rf"[:=]{port}\b", timeout=60)
    assert proc.returncode == 0, err[-3000:]
    assert not leftovers, f"Ray processes outlived the cluster: {leftovers}"
    report = json.loads(out.strip().splitlines()[-1])
    print("node-loss report:", report)
    assert "error" not in report, report
    assert report["nodes_before"] == 4 and report["gpus_declared"] == 3
    assert report["removed_node"] and report["trial_pids_on_it"]
    assert report["alive_nodes_after"] == 3
    assert report["sweep_running_when_node_died"], report
    history = raw_rows(store, "trials")
    assert report["summary"] == {"to_run": 2, "errors": 0}, [
        (r["key"][:8], r["attempt"], r["status"], r["error"][-120:]) for r in history]
    return report, history


def test_trials_survive_the_loss_of_their_node(tmp_path):
    store = tmp_path / "store"
    report, history = _node_loss(store)
    spec = parse_spec(sweep(str(store)), source="nodeloss.yaml")
    trials = {t.key: t for t in spec.trials()}
    s = open_store(store)
    final = {t["key"]: t for t in s.trials(sweep="nodeloss").to_pylist()}
    assert {k: t["status"] for k, t in final.items()} == dict.fromkeys(trials, "finished")
    retried = {r["key"] for r in history if r["status"] == "retrying"}
    # The crashed attempt says why (Ray's actor-death message), not a placeholder.
    assert all(r["error"] and r["error"] != "trial process failed"
               for r in history if r["status"] == "retrying"), history
    # Exactly the trials that ran on the removed node were retried.
    assert report["checkpointed_trial_on_it"] in retried
    assert len(retried) <= len(report["trial_pids_on_it"]), history
    assert all(final[k]["attempt"] == 2 for k in retried)
    metrics = s.metrics(sweep="nodeloss").to_pylist()
    raw = Counter((r["key"], r["step"]) for r in raw_rows(store))
    for key, trial in trials.items():
        mine = [r for r in metrics if r["key"] == key]
        assert_curve_matches(mine, reference_rows(trial.to_dict()), key)
        if key == report["checkpointed_trial_on_it"]:
            # Resumed from its checkpoint, not restarted: rows up to step 20 are the lost
            # attempt's, the rest the retry's.
            assert [r["attempt"] for r in mine][:2] == [1, 1]
            assert mine[-1]["attempt"] > 1
    assert max(raw.values()) <= 2


def test_a_stack_survives_the_loss_of_its_node(tmp_path):
    """The same, with the two trials as one stack (`training.stack: 2`): the stack is
    retried on a surviving node from its checkpoint, both members continuing from their
    own folders of it, each member's curve that of the uninterrupted stack."""
    from tests.reliability.test_stack_faults import _assert_curves, _reference

    store = tmp_path / "store"
    report, history = _node_loss(store, "2")
    spec = parse_spec(sweep(str(store), stack=2), source="nodeloss.yaml")
    keys = [t.key for t in spec.trials()]
    assert report["checkpointed_trial_on_it"] == keys[0]  # the stack, by its first member
    s = open_store(store)
    final = {t["key"]: t for t in s.trials(sweep="nodeloss").to_pylist()}
    assert {k: t["status"] for k, t in final.items()} == dict.fromkeys(keys, "finished")
    assert all(final[k]["attempt"] >= 2 for k in keys)  # the stack was retried
    assert {r["key"] for r in history if r["status"] == "retrying"} == set(keys)
    metrics = s.metrics(sweep="nodeloss").to_pylist()
    for key in keys:
        mine = [r for r in metrics if r["key"] == key]
        # Resumed from the stack's checkpoint, not restarted.
        assert [r["attempt"] for r in mine][:2] == [1, 1] and mine[-1]["attempt"] > 1
    _assert_curves(s, spec, _reference(spec))
    assert max(Counter((r["key"], r["step"]) for r in raw_rows(store)).values()) <= 2
