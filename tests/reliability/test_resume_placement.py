"""Data placement: a sweep whose store was given as a relative path is killed, its store is
moved or copied somewhere else, and `equisweep resume NAME --store NEW` (run from a third
folder, `NEW` relative to it) finishes it in NEW: every row of every trial exactly once,
from Tune state found relative to NEW, and not one byte written anywhere else.

The kill is deterministic: every trial's first attempt stores its step-20 checkpoint and
waits at a gate (`gate@20`, tests/helpers/inject) that stays shut until the driver is
dead; the resume opens it.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from pathlib import Path

import pytest

from equisweep.spec import parse_spec
from equisweep.store import open_store
from tests.reliability.conftest import raw_rows, reliability_sweep, write_yaml
from tests.reliability.drivers import Driver
from tests.reliability.helpers import assert_curve_matches, reference_rows

pytestmark = pytest.mark.slow
NAME = "placed"


def _snapshot(root: Path) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = Path(dirpath) / n
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size, st.st_mtime_ns)
    return out


def _wait_for_gated_trials(driver: Driver, store: Path, fired: Path, n: int,
                           timeout: float = 400) -> None:
    """Until `n` trials wait at the gate with their step-20 rows and Tune's state stored."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert driver.proc.poll() is None, f"driver ended early:\n{driver.tail()}"
        gated = {p.name for p in fired.iterdir()} if fired.is_dir() else set()
        stored = {r["key"] for r in raw_rows(store) if r["step"] >= 20}
        state = list((store / "_tune" / NAME).glob("experiment_state*"))
        if len(gated) >= n and gated <= stored and state:  # Tune's state is there to resume
            return
        time.sleep(0.2)
    raise AssertionError(f"no {n} gated trials within {timeout} s:\n{driver.tail()}")


@pytest.mark.parametrize("how", ["moved", "copied"])
def test_resume_writes_into_the_store_it_is_given(head_cluster, tmp_path, how):
    address, _ = head_cluster
    spec = reliability_sweep(NAME, samples=2)  # 4 trials, 2 at a time
    spec["store"] = "results"  # relative: to where `run` runs
    first, elsewhere, new_home = tmp_path / "first", tmp_path / "elsewhere", tmp_path / "new"
    for d in (first, elsewhere, new_home):
        d.mkdir()
    sweep_file = write_yaml(first / f"{NAME}.yaml", spec)
    faults = tmp_path / "faults"
    gate = faults / "gate-open"
    fault_env = {"EQUISWEEP_FAULT": "gate@20", "EQUISWEEP_FAULT_DIR": str(faults / "fired"),
                 "EQUISWEEP_FAULT_GATE": str(gate)}

    run = Driver(["run", sweep_file.name, "--address", address, "--shared-store", "--no-progress"],
                 tmp_path / "run.log", env=fault_env, cwd=first)
    _wait_for_gated_trials(run, first / "results", faults / "fired", n=2)
    run.kill()

    old = first / "results"
    new = new_home / "store"
    if how == "moved":
        shutil.move(old, new)
    else:
        shutil.copytree(old, new, symlinks=True)
    old_before = _snapshot(old) if old.exists() else None
    gate.touch()
    resume = Driver(["resume", NAME, "--store", os.path.relpath(new, elsewhere),
                     "--address", address, "--shared-store"], tmp_path / "resume.log",
                    cwd=elsewhere)
    assert resume.wait() == 0, resume.tail()

    # Nothing written anywhere but the store it was given.
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in first.iterdir()) == (
        [f"{NAME}.yaml"] if how == "moved" else [f"{NAME}.yaml", "results"])
    if how == "copied":
        assert _snapshot(old) == old_before, "resume wrote into the store it was copied from"

    trials = {t.key: t for t in parse_spec(spec, source="placed.yaml").trials()}
    s = open_store(new)
    final = {t["key"]: t for t in s.trials(sweep=NAME).to_pylist()}
    assert {k: t["status"] for k, t in final.items()} == dict.fromkeys(trials, "finished")
    metrics = s.metrics(sweep=NAME).to_pylist()
    refs = {key: reference_rows(trial.to_dict()) for key, trial in trials.items()}
    for key, ref in refs.items():
        assert_curve_matches([r for r in metrics if r["key"] == key], ref, key)
    # A step re-run after the kill may be stored again (dedup shows it once), no more.
    raw = Counter((r["key"], r["step"]) for r in raw_rows(new))
    assert len(raw) == sum(len(ref) for ref in refs.values()) \
        and max(raw.values()) <= 2, raw
    meta = s.read_sweep_meta(NAME)
    assert Path(meta["store"]).is_absolute()
    assert s.check().ok
