"""WSD trunks and branches survive faults: a crashed branch is retried from its fork
checkpoint; the driver killed mid-trunk and then mid-branch resumes to exactly the store an
uninterrupted run writes, every length once.

The kills are gated, not timed: the `gate` fault stops a trial at a step (behind a gate the
test never opens) and leaves a marker, and the test kills the driver once the marker exists,
i.e. while that trial is provably mid-run (the marker also keeps the fault from firing again
after the resume).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from itertools import groupby
from pathlib import Path

import pytest

from equisweep.spec import parse_spec
from equisweep.store import open_store
from equisweep.sweep.driver import run_sweep
from equisweep.sweep.forks import ForkStore
from tests.reliability.conftest import raw_rows, write_yaml
from tests.reliability.helpers import assert_curve_matches, reference_rows
from tests.sweep.conftest import tiny_sweep_dict

pytestmark = pytest.mark.slow


def wsd_dict(name: str, steps=(40, 80)) -> dict:
    d = tiny_sweep_dict(
        name, grid={"steps": list(steps), "train_trajectories": [8], "seed": [0]},
        search={"method": "grid", "params": {"lr": 3e-3}},
        training={**tiny_sweep_dict()["training"], "eval_every": 5, "checkpoint_every": 10,
                  "schedule": "wsd", "cooldown": 0.25})
    d["families"] = {"transformer": {"sizes": [{"width": 8, "depth": 1}]}}
    return d


def roles(spec) -> tuple:
    trials = sorted(spec.trials(), key=lambda t: t.steps)
    return trials[-1], trials[0]  # trunk, branch (forks at 30 of 40)


def test_crashed_branch_is_retried_from_its_fork_checkpoint(ray_session, tmp_path, monkeypatch):
    store_path = tmp_path / "store"
    spec = parse_spec(dict(wsd_dict("wsd-retry"), store=str(store_path)), source="x.yaml")
    trunk, branch = roles(spec)
    markers = tmp_path / "markers"
    # At its first own row (35, past the fork at 30, before its own first checkpoint at 40).
    monkeypatch.setenv("EQUISWEEP_FAULT", "raise@35")
    monkeypatch.setenv("EQUISWEEP_FAULT_DIR", str(markers))
    monkeypatch.setenv("EQUISWEEP_FAULT_KEYS", branch.key)
    summary = run_sweep(spec, store_uri=str(store_path), progress=False)
    assert summary["errors"] == 0
    assert [p.name for p in markers.iterdir()] == [branch.key]  # the fault really fired
    history = [(r["attempt"], r["status"]) for r in raw_rows(store_path, "trials")
               if r["key"] == branch.key]
    assert [k for k, _ in groupby(history)] == [
        (1, "running"), (1, "retrying"), (2, "running"), (2, "finished")], history

    store = open_store(store_path)
    curves: dict[str, list] = {}
    for r in store.metrics(sweep=spec.name).to_pylist():
        curves.setdefault(r["key"], []).append(r)
    mine = curves[branch.key]
    # The retry (attempt 2) wrote the whole curve; its rows up to the fork are the trunk's own
    # rows, wall time and all: it restarted from the fork, it did not retrain from step 0.
    assert all(r["attempt"] == 2 for r in mine)
    trunk_wall = {r["step"]: r["wall_s"] for r in curves[trunk.key]}
    assert [r["step"] for r in mine if r["wall_s"] == trunk_wall.get(r["step"])] == [
        5, 10, 15, 20, 25, 30]
    assert_curve_matches(mine, reference_rows(branch.to_dict()), branch.key)
    assert ForkStore(str(store_path), spec.name).ready() == set()  # used, then removed


class Driver:
    def __init__(self, args: list[str], log: Path, fault: dict | None = None):
        env = {k: v for k, v in os.environ.items()
               if k != "RAY_ADDRESS" and not k.startswith("EQUISWEEP_FAULT")}
        env.pop("RAY_AUTH_MODE", None)
        env.update(fault or {})
        self.log = log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "equisweep.cli", *args],
                                     stdout=self._out, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def kill_when(self, marker: Path, state: Path, timeout: float = 600) -> None:
        """SIGKILL the driver once the gated trial left its marker and Tune has written its
        experiment state (without it there is nothing to resume from: not this test's case)."""
        deadline = time.time() + timeout
        while not (marker.exists() and any(state.glob("experiment_state-*.json"))):
            assert self.proc.poll() is None, f"driver ended early:\n{self.tail()}"
            assert time.time() < deadline, f"no {marker.name} within {timeout} s:\n{self.tail()}"
            time.sleep(0.2)
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._out.close()

    def wait(self, timeout: float = 600) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
            self._out.close()


def test_driver_killed_mid_trunk_then_mid_branch_resumes_to_every_length_once(
        head_cluster, tmp_path):
    address, _ = head_cluster
    name = "wsd-killed"
    sweep_file = write_yaml(tmp_path / f"{name}.yaml", wsd_dict(name))
    store_path = tmp_path / "store"
    spec = parse_spec(dict(wsd_dict(name), store=str(store_path)), source="x.yaml")
    trunk, branch = roles(spec)
    markers = tmp_path / "markers"
    common = ["--store", str(store_path), "--address", address, "--shared-store"]

    # 1. The trunk waits at step 20, before its fork at 30: kill the driver there.
    hold = {"EQUISWEEP_FAULT_DIR": str(markers), "EQUISWEEP_FAULT": "gate@20",
            "EQUISWEEP_FAULT_KEYS": trunk.key,
            "EQUISWEEP_FAULT_GATE": str(tmp_path / "never-opened")}
    d = Driver(["run", str(sweep_file), *common, "--no-progress"], tmp_path / "run.log", hold)
    state = store_path / "_tune" / name
    d.kill_when(markers / trunk.key, state)
    assert not ForkStore(str(store_path), name).ready()
    # 2. Resumed, the trunk continues from its checkpoint; the branch starts from the fork
    #    and waits at its first own row: kill the driver mid-branch.
    hold = dict(hold, EQUISWEEP_FAULT="gate@35", EQUISWEEP_FAULT_KEYS=branch.key)
    d = Driver(["resume", name, *common], tmp_path / "resume-1.log", hold)
    d.kill_when(markers / branch.key, state)
    # 3. Resumed again: everything finishes.
    d = Driver(["resume", name, *common], tmp_path / "resume-2.log")
    assert d.wait() == 0, d.tail()

    store = open_store(store_path)
    trials = {r["key"]: r for r in store.trials(sweep=name).to_pylist()}
    assert {k: r["status"] for k, r in trials.items()} == {trunk.key: "finished",
                                                          branch.key: "finished"}
    assert trials[branch.key]["trunk"] == trunk.key and trials[branch.key]["fork_step"] == 30
    metrics = store.metrics(sweep=name).to_pylist()
    steps = [(r["key"], r["step"]) for r in metrics]
    assert len(steps) == len(set(steps)) == 40 // 5 + 80 // 5
    for t in (trunk, branch):
        assert_curve_matches([r for r in metrics if r["key"] == t.key],
                             reference_rows(t.to_dict()), t.key)
    assert len(store.final(sweep=name)) == 2
    assert store.check().ok
    assert ForkStore(str(store_path), name).ready() == set()
