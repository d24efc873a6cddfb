"""Reliability with stacked trials (`training.stack`): each member of a stack is a trial that
ends exactly once, whatever happens to the stack.

- A member whose loss turns non-finite is recorded `diverged`; its mates finish, their
  curves those of the stack without it.
- A stack whose process dies is retried from its checkpoint (one folder per member): every
  member's stored curve is the uninterrupted stack's, each step once.
- The driver killed mid-stack and `equisweep resume`d: every member finishes exactly once,
  continuing from its own checkpoint.

Faults are injected for real inside the Ray trial worker (tests/helpers/inject). The
reference curves come from the same stack trained in this process (`run_stack`, one
thread like a 1-CPU Ray trial), so they must agree bit for bit.
"""

from __future__ import annotations

import time
from collections import Counter
from itertools import groupby
from pathlib import Path

import fault_injector
import pytest

from equisweep.spec import parse_spec
from equisweep.store import open_store
from equisweep.trainer.stack import run_stack
from tests.reliability.conftest import raw_rows, reliability_sweep, write_yaml
from tests.reliability.drivers import Driver
from tests.reliability.helpers import COMPARED, one_thread, run_with_fault, same

pytestmark = pytest.mark.slow
LRS = [1e-3, 3e-3, 1e-2]


def _stack_sweep(name: str) -> dict:
    """One transformer cell, three learning rates: one stack of 3, 40 steps, a row every 10
    steps and a checkpoint every 20."""
    d = reliability_sweep(name, steps=40)
    d["families"] = {"transformer": d["families"]["transformer"]}
    d["search"] = {"method": "grid", "params": {"lr": {"choice": LRS}}}
    d["training"] = dict(d["training"], stack=3)
    return d


def _reference(spec, nan_at: dict[int, int] | None = None) -> dict[str, dict[int, dict]]:
    """Each member's rows of the stack trained here; `nan_at`: member -> the step whose
    training loss is made non-finite, as the injected `nan@N` does in the worker."""
    trials = spec.trials()
    with one_thread(), fault_injector.poisoned_losses(nan_at or {}):
        rows = run_stack([t.to_dict() for t in trials])
    return {t.key: {r["step"]: r for r in rs} for t, rs in zip(trials, rows)}


def _assert_curves(store, spec, reference) -> None:
    metrics = store.metrics(sweep=spec.name).to_pylist()
    for key, ref in reference.items():
        mine = [r for r in metrics if r["key"] == key]
        assert [r["step"] for r in mine] == sorted(ref), (key, [r["step"] for r in mine])
        for r in mine:
            for col in COMPARED:
                assert same(r[col], ref[r["step"]][col]), (
                    key,
                    r["step"],
                    col,
                    r[col],
                    ref[r["step"]][col],
                )


def _run(tmp_path, monkeypatch, name, fault, keys=None):
    return run_with_fault(tmp_path, monkeypatch, name, fault, _stack_sweep(name), keys)


def test_a_diverging_member_does_not_stop_its_stack_mates(ray_session, tmp_path, monkeypatch):
    probe = parse_spec(_stack_sweep("stack-nan"), source="probe")
    victim = probe.trials()[1].key
    spec, summary, store, store_path, markers = _run(
        tmp_path, monkeypatch, "stack-nan", "nan@25", keys=[victim]
    )
    assert summary["errors"] == 0 and summary["unfinished"] == []
    assert [p.name for p in markers.iterdir()] == [victim]
    final = {r["key"]: r for r in store.final(sweep=spec.name).to_pylist()}
    assert final[victim]["status"] == "diverged"
    assert "non-finite training loss at step 25" in final[victim]["error"]
    for key in final.keys() - {victim}:
        assert final[key]["status"] == "finished" and final[key]["test_loss"] > 0
    history = [r for r in raw_rows(store_path, "trials") if r["key"] == victim]
    assert [k for k, _ in groupby((r["attempt"], r["status"]) for r in history)] == [
        (1, "running"), (1, "diverged")]
    # Every member's curve is the stack's own: the victim's rows up to its end, its mates'
    # every row, trained on without it from step 25.
    _assert_curves(store, spec, _reference(spec, nan_at={1: 25}))


def test_a_crashed_stack_retries_from_its_checkpoint(ray_session, tmp_path, monkeypatch):
    # The stack reports rows 10, 20 (its checkpoint) and 30, then its process dies.
    spec, summary, store, store_path, markers = _run(tmp_path, monkeypatch, "stack-exit", "exit@40")
    keys = [t.key for t in spec.trials()]
    assert summary["errors"] == 0
    # One crash of the stack is every member's: all marked, none crashes again.
    assert sorted(p.name for p in markers.iterdir()) == sorted(keys)
    history = raw_rows(store_path, "trials")
    for key in keys:
        mine = [r for r in history if r["key"] == key]
        assert [s for s, _ in groupby(r["status"] for r in mine)] == [
            "running", "retrying", "running", "finished"]
        assert mine[0]["attempt"] == 1 and mine[-1]["attempt"] == 2
    raw = Counter((r["key"], r["step"]) for r in raw_rows(store_path))
    assert raw == {(k, s): 2 if s == 30 else 1 for k in keys for s in (10, 20, 30, 40)}
    for key in keys:
        mine = [r for r in store.metrics(sweep=spec.name).to_pylist() if r["key"] == key]
        assert [r["attempt"] for r in mine] == [1, 1, 2, 2]
    _assert_curves(store, spec, _reference(spec))
    assert store.check().ok


def _wait_for_gate(driver: Driver, store: Path, fired: Path, keys, timeout: float = 400):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert driver.proc.poll() is None, f"driver ended early:\n{driver.tail()}"
        gated = {p.name for p in fired.iterdir()} if fired.is_dir() else set()
        stored = {r["key"] for r in raw_rows(store) if r["step"] >= 20}
        if gated == set(keys) and stored == set(keys):
            return
        time.sleep(0.2)
    raise AssertionError(f"the stack did not reach its gate in {timeout} s:\n{driver.tail()}")


def test_driver_killed_mid_stack_then_resumed_finishes_every_member_once(head_cluster, tmp_path):
    address, _ = head_cluster
    name = "stack-killed"
    spec_dict = _stack_sweep(name)
    sweep_file = write_yaml(tmp_path / f"{name}.yaml", spec_dict)
    store_path = tmp_path / "store"
    faults = tmp_path / "faults"
    gate = faults / "gate-open"
    env = {
        "EQUISWEEP_FAULT": "gate@20",
        "EQUISWEEP_FAULT_DIR": str(faults / "fired"),
        "EQUISWEEP_FAULT_GATE": str(gate),
    }
    common = ["--address", address, "--shared-store", "--no-progress"]
    run = Driver(
        ["run", str(sweep_file), "--store", str(store_path), *common], tmp_path / "run.log", env=env
    )
    spec = parse_spec(dict(spec_dict, store=str(store_path)), source=f"{name}.yaml")
    keys = [t.key for t in spec.trials()]
    # Every member's step-20 row and the stack's checkpoint are stored; the stack waits.
    _wait_for_gate(run, store_path, faults / "fired", keys)
    run.kill()
    gate.touch()
    resume = Driver(
        ["resume", name, "--store", str(store_path), "--address", address, "--shared-store"],
        tmp_path / "resume.log",
    )
    assert resume.wait() == 0, resume.tail()

    store = open_store(store_path)
    final = {r["key"]: r for r in store.trials(sweep=name).to_pylist()}
    assert {k: r["status"] for k, r in final.items()} == dict.fromkeys(keys, "finished")
    ended = Counter(r["key"] for r in raw_rows(store_path, "trials") if r["status"] == "finished")
    assert ended == dict.fromkeys(keys, 1)  # each member finished exactly once
    raw = Counter((r["key"], r["step"]) for r in raw_rows(store_path))
    # Continued from the step-20 checkpoint: steps 10 and 20 stored once, never retrained.
    assert raw == {(k, s): 1 for k in keys for s in (10, 20, 30, 40)}, raw
    for key in keys:
        mine = [r for r in store.metrics(sweep=name).to_pylist() if r["key"] == key]
        assert [r["attempt"] for r in mine] == [1, 1, 2, 2]
    _assert_curves(store, spec, _reference(spec))
    assert store.check().ok
