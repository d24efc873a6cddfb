"""Damaged checkpoints (issue 21, class 3): a trial never trains from a checkpoint it cannot
load, and it never fails for good because of one either.

- A trial's newest Tune checkpoint (`<store>/_tune/<sweep>/<trial>/checkpoint_*/trial.pt`)
  is cut in half while the trial waits at a gate, and then its Ray worker is SIGKILLed: Tune
  retries it from that checkpoint. The retry finds it unreadable, names the file in the
  worker's log and continues from the older step-20 checkpoint: rows 10 and 20 stay
  attempt 1's, the rest are the retry's, and the curve is bit-identical to an uninterrupted
  run. (Before, every retry failed on the same file and the trial ended `failed`.)
- A WSD branch's fork checkpoint (`<store>/_forks/<sweep>/<branch>/trial.pt`) is overwritten
  with garbage after the trunk published it: the branch retrains the trunk's segment itself
  (its rows are a function of seed and step), with the same curve.
The `resume` path already skips a damaged checkpoint (`prior_checkpoints.fetch_latest`
verifies each candidate), so one retry path is what these tests add.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from equisweep.spec import parse_spec
from equisweep.store import open_store
from equisweep.sweep.driver import run_sweep
from equisweep.sweep.forks import ForkStore
from tests.reliability.conftest import raw_rows, reliability_sweep
from tests.reliability.helpers import assert_curve_matches, reference_rows
from tests.reliability.test_wsd_faults import roles, wsd_dict

pytestmark = pytest.mark.slow


def _checkpoint(tune_root: Path, key: str, step: int) -> Path | None:
    """The Tune checkpoint folder tagged as `key` at `step`, once it is there."""
    for tag in tune_root.glob("*/checkpoint_*/equisweep.json"):
        try:
            meta = json.loads(tag.read_text())
        except (OSError, ValueError):
            continue  # being written
        if meta.get("key") == key and meta.get("step") == step:
            return tag.parent
    return None


def _worker_logs_say(text: str) -> bool:
    """Whether a Ray worker's log of this session holds `text` (what the trial printed)."""
    import ray

    logs = Path(ray._private.worker.global_worker.node.get_logs_dir_path())
    return any(text in p.read_text(errors="replace") for p in logs.glob("worker-*.err"))


def _worker_of(key: str) -> int | None:
    """The pid of the Ray worker running `key`: Tune runs it inside the trial's folder."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if key[:8] in Path(os.readlink(f"/proc/{pid}/cwd")).name:
                return int(pid)
        except OSError:
            continue
    return None


class _Act(threading.Thread):
    """Runs `act` once `ready` holds (polled), beside the in-process driver; its failure is
    kept and re-raised by the test, and it gives up after `timeout` s."""

    def __init__(self, ready, act, timeout: float = 300):
        super().__init__(daemon=True)
        self.ready, self.act, self.timeout = ready, act, timeout
        self.error: BaseException | None = None
        self.done = False

    def run(self):
        try:
            deadline = time.time() + self.timeout
            while not self.ready():
                if time.time() > deadline:
                    raise AssertionError("condition not reached")
                time.sleep(0.2)
            self.act()
            self.done = True
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc


def _sweep_while(spec, store_path: Path, ready, act):
    """Run the sweep while `act` damages a file once `ready()`; every trial must end without
    error; returns the store."""
    actor = _Act(ready, act)
    actor.start()
    summary = run_sweep(spec, store_uri=str(store_path), progress=False)
    actor.join(timeout=60)
    assert actor.error is None and actor.done, actor.error
    assert summary["errors"] == 0, summary
    return open_store(store_path)


def test_a_cut_tune_checkpoint_is_skipped_and_the_trial_retries_from_an_older_one(
        ray_session, tmp_path, monkeypatch):
    name = "cutckpt"
    store_path = tmp_path / "store"
    spec = parse_spec(dict(reliability_sweep(name, steps=60, samples=1), store=str(store_path)),
                      source=f"{name}.yaml")
    victim, other = sorted(spec.trials(), key=lambda t: t.key)
    markers = tmp_path / "markers"
    monkeypatch.setenv("EQUISWEEP_FAULT", "gate@40")
    monkeypatch.setenv("EQUISWEEP_FAULT_DIR", str(markers))
    monkeypatch.setenv("EQUISWEEP_FAULT_KEYS", victim.key)
    monkeypatch.setenv("EQUISWEEP_FAULT_GATE", str(tmp_path / "never-opened"))
    tune_root = store_path / "_tune" / name
    cut: list[Path] = []

    def ready():  # waiting at the gate, its step-40 checkpoint and row stored
        rows = {r["step"] for r in raw_rows(store_path) if r["key"] == victim.key}
        return ((markers / victim.key).exists() and 40 in rows
                and _checkpoint(tune_root, victim.key, 40) is not None
                and _worker_of(victim.key) is not None)

    def act():
        pt = _checkpoint(tune_root, victim.key, 40) / "trial.pt"
        data = pt.read_bytes()
        pt.write_bytes(data[: len(data) // 2])
        cut.append(pt)
        os.kill(_worker_of(victim.key), signal.SIGKILL)

    store = _sweep_while(spec, store_path, ready, act)
    trials = {r["key"]: r for r in store.trials(sweep=name).to_pylist()}
    assert {k: r["status"] for k, r in trials.items()} == {victim.key: "finished",
                                                          other.key: "finished"}
    metrics = store.metrics(sweep=name).to_pylist()
    mine = sorted((r for r in metrics if r["key"] == victim.key), key=lambda r: r["step"])
    # Continued from the step-20 checkpoint: not from the cut one (40), not from scratch.
    assert [r["attempt"] for r in mine] == [1, 1, 2, 2, 2, 2], mine
    assert _worker_logs_say(f"checkpoint {cut[0]} cannot be restored")
    for t in (victim, other):
        assert_curve_matches(sorted((r for r in metrics if r["key"] == t.key),
                                    key=lambda r: r["step"]),
                             reference_rows(t.to_dict()), t.key)


def test_a_garbage_fork_checkpoint_is_never_trained_from(ray_session, tmp_path, monkeypatch):
    name = "badfork"
    store_path = tmp_path / "store"
    d = dict(wsd_dict(name), max_concurrent=1)  # the branch starts after the trunk ends
    spec = parse_spec(dict(d, store=str(store_path)), source=f"{name}.yaml")
    trunk, branch = roles(spec)
    markers, gate = tmp_path / "markers", tmp_path / "gate"
    # The trunk waits at 35, past its fork at 30: the fork is published, the branch not begun.
    monkeypatch.setenv("EQUISWEEP_FAULT", "gate@35")
    monkeypatch.setenv("EQUISWEEP_FAULT_DIR", str(markers))
    monkeypatch.setenv("EQUISWEEP_FAULT_KEYS", trunk.key)
    monkeypatch.setenv("EQUISWEEP_FAULT_GATE", str(gate))
    forks = ForkStore(str(store_path), name)

    def act():
        Path(forks.path(branch.key)).write_bytes(b"\x80garbage, not a checkpoint" * 64)
        gate.touch()

    store = _sweep_while(spec, store_path,
                         lambda: (markers / trunk.key).exists() and branch.key in forks.ready(),
                         act)
    trials = {r["key"]: r for r in store.trials(sweep=name).to_pylist()}
    assert {k: (r["status"], r["attempt"]) for k, r in trials.items()} == {
        trunk.key: ("finished", 1), branch.key: ("finished", 1)}
    metrics = store.metrics(sweep=name).to_pylist()
    curves = {t.key: sorted((r for r in metrics if r["key"] == t.key), key=lambda r: r["step"])
              for t in (trunk, branch)}
    # Trained its first 30 steps itself: none of its rows is the trunk's row (wall time).
    trunk_wall = {r["step"]: r["wall_s"] for r in curves[trunk.key]}
    assert not [r["step"] for r in curves[branch.key] if r["wall_s"] == trunk_wall.get(r["step"])]
    for t in (trunk, branch):
        assert_curve_matches(curves[t.key], reference_rows(t.to_dict()), t.key)
    assert forks.ready() == set()
    assert _worker_logs_say(f"fork checkpoint {forks.path(branch.key)} cannot be restored")


def test_a_cut_member_checkpoint_restarts_its_stack_from_a_usable_step(ray_session, tmp_path,
                                                                     monkeypatch):
    """A stack (`training.stack: 3`) waits at `gate@30` after its step-20 checkpoint (one
    folder per member); member 1's `trial.pt` there is cut in half and the stack's worker is
    SIGKILLed. The retry names the file and, with no older checkpoint, trains the whole stack
    from the first step: every member finishes, its stored rows are the retry's, its curve
    the uninterrupted stack's. (Before, every retry failed on the same file.)"""
    from tests.reliability.test_stack_faults import _assert_curves, _reference, _stack_sweep

    name = "cutstack"
    store_path = tmp_path / "store"
    spec = parse_spec(dict(_stack_sweep(name), store=str(store_path)), source=f"{name}.yaml")
    keys = [t.key for t in spec.trials()]
    markers = tmp_path / "markers"
    monkeypatch.setenv("EQUISWEEP_FAULT", "gate@30")
    monkeypatch.setenv("EQUISWEEP_FAULT_DIR", str(markers))
    monkeypatch.setenv("EQUISWEEP_FAULT_GATE", str(tmp_path / "never-opened"))
    tune_root = store_path / "_tune" / name
    cut: list[Path] = []

    def member_checkpoint(key: str) -> Path | None:
        for tag in tune_root.glob("*/checkpoint_*/m*/equisweep.json"):
            try:
                meta = json.loads(tag.read_text())
            except (OSError, ValueError):
                continue  # being written
            if meta.get("key") == key and meta.get("step") == 20:
                return tag.parent
        return None

    def ready():  # the stack waits at the gate, its step-20 checkpoint stored
        return (markers.is_dir() and len(list(markers.iterdir())) == len(keys)
                and member_checkpoint(keys[1]) is not None
                and _worker_of(keys[0]) is not None)

    def act():
        pt = member_checkpoint(keys[1]) / "trial.pt"
        pt.write_bytes(pt.read_bytes()[: pt.stat().st_size // 2])
        cut.append(pt)
        os.kill(_worker_of(keys[0]), signal.SIGKILL)  # the stack runs in its first's folder

    store = _sweep_while(spec, store_path, ready, act)
    trials = {r["key"]: r["status"] for r in store.trials(sweep=name).to_pylist()}
    assert trials == {k: "finished" for k in keys}
    for key in keys:
        mine = [r for r in store.metrics(sweep=name).to_pylist() if r["key"] == key]
        assert [(r["step"], r["attempt"]) for r in mine] == [(s, 2) for s in (10, 20, 30, 40)]
    assert _worker_logs_say(f"stack member {keys[1]}: checkpoint ")
    assert _worker_logs_say("m1/trial.pt cannot be restored")
    _assert_curves(store, spec, _reference(spec))
    assert store.check().ok
