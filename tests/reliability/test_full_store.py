"""A running sweep's store fills up (issue 21, class 3): the store is a small tmpfs, filled to
the last byte while both trials wait at a gate (rows 10 and 20 and the step-20 checkpoints
stored), then the gate opens. The driver must end in one line saying what is full and how
to continue (not a traceback), lose or duplicate no stored row, and `equisweep resume`
after space is freed must finish every trial exactly once, bit-identical to an
uninterrupted run. Needs root (mount); skipped where mounting is refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from equisweep.spec import parse_spec
from equisweep.store import open_store
from tests.reliability.conftest import raw_rows, reliability_sweep, write_yaml
from tests.reliability.helpers import assert_curve_matches, reference_rows
from tests.reliability.test_storage_faults import tmpfs

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")]
ROOT = Path(__file__).resolve().parents[2]


def _fill(f) -> None:
    """Take every free byte of the file system `f` is on."""
    try:
        while True:
            f.write(b"\0" * 65536)
    except OSError:
        pass


def _cli(args, log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "equisweep.cli", *args], cwd=ROOT, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_a_store_that_fills_mid_sweep_ends_in_one_line_and_resumes_exactly(tmp_path):
    name = "filled"
    spec_dict = reliability_sweep(name, steps=60, samples=1)
    sweep_file = write_yaml(tmp_path / f"{name}.yaml", spec_dict)
    env = {k: v for k, v in os.environ.items()
           if k != "RAY_ADDRESS" and not k.startswith("EQUISWEEP_FAULT")}
    markers, gate = tmp_path / "markers", tmp_path / "gate"
    gated = dict(env, EQUISWEEP_FAULT="gate@20", EQUISWEEP_FAULT_DIR=str(markers),
                 EQUISWEEP_FAULT_GATE=str(gate))
    with tmpfs(tmp_path / "disk", "64m") as disk:
        store_path = disk / "store"
        # Created before the sweep: filling then only appends to it (a create on the busy
        # tmpfs was refused with ENOSPC now and then, before any byte was written).
        filler = open(disk / "filler", "wb", buffering=0)
        spec = parse_spec(dict(spec_dict, store=str(store_path)), source="x.yaml")
        keys = sorted(t.key for t in spec.trials())
        run = _cli(["run", str(sweep_file), "--store", str(store_path), "--no-progress",
                    "--data-dir", str(tmp_path / "data")], tmp_path / "run.log", gated)
        try:
            deadline = time.time() + 300
            while True:  # both trials at the gate, their step-20 rows stored
                assert run.poll() is None, run.stderr.read()
                assert time.time() < deadline, (tmp_path / "run.log").read_text()[-3000:]
                held = {(r["key"], r["step"]) for r in raw_rows(store_path)}
                if all((markers / k).exists() and (k, 20) in held for k in keys):
                    break
                time.sleep(0.3)
            _fill(filler)
            before = Counter((r["key"], r["step"], r["attempt"]) for r in raw_rows(store_path))
            gate.touch()
            _, err = run.communicate(timeout=300)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, 9)
                run.wait()
        # --no-progress prints a line per trial event ("[12:00:00] started ..."); then one
        # error line, and nothing else (no traceback, no logging error).
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[")]
        assert run.returncode == 2 and len(lines) == 1, err[-3000:]
        assert err.rstrip().endswith(lines[0]) and "Traceback" not in err, err[-3000:]
        assert "No space left on device" in lines[0] and str(store_path) in lines[0], lines
        assert f"equisweep resume {name} --store {store_path}" in lines[0], lines
        after = Counter((r["key"], r["step"], r["attempt"]) for r in raw_rows(store_path))
        assert not +(before - after), "a stored row was lost"
        assert all(n == 1 for n in after.values()), after  # no row stored twice

        filler.close()
        (disk / "filler").unlink()  # space freed
        resume = _cli(["resume", name, "--store", str(store_path)], tmp_path / "resume.log",
                      env)
        _, err = resume.communicate(timeout=600)
        assert resume.returncode == 0, err + (tmp_path / "resume.log").read_text()[-3000:]

        store = open_store(store_path)
        finished = [r["key"] for r in raw_rows(store_path, "trials")
                    if r["status"] == "finished"]
        assert sorted(finished) == keys  # every trial finished exactly once
        metrics = store.metrics(sweep=name).to_pylist()
        for t in spec.trials():
            assert_curve_matches(sorted((r for r in metrics if r["key"] == t.key),
                                        key=lambda r: r["step"]),
                                 reference_rows(t.to_dict()), t.key)
        report = store.check()
        assert report.ok, json.dumps(str(report))
