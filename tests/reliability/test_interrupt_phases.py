"""Ctrl-C and SIGTERM in the phases before and after a sweep: data generation (`equisweep
data generate`, whose worker pool must go with it) and `equisweep analyze` (its bootstrap
pool) — a real process, a real signal.

Each ends with one line on stderr and the documented exit code (130 for SIGINT, 143 for
SIGTERM), leaves no process of its own behind and no half-written file under a final name,
and a rerun finishes the job with a dataset identical to an uninterrupted one. (The sweep
phase itself is covered by test_one_driver.py.)
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# Small shards, so the signal lands between shards with several already on disk.
DATA = ["--trajectories", "512", "--val-trajectories", "64", "--test-trajectories", "64",
        "--shard-size", "16", "--frames", "16", "--workers", "2"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _as_in_a_terminal() -> None:
    """In the child, before exec: SIGINT back to its default. A shell starts background
    jobs (`cmd &`, as CI runners may run the suite) with SIGINT ignored, the child inherits
    that, and Python then never installs its Ctrl-C handler; a user's terminal does not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _generate(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "equisweep.cli", "data", "generate",
                             "--out", str(out), "--quiet", *DATA, *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), start_new_session=True,
                            preexec_fn=_as_in_a_terminal)


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a live process, from /proc; None once it is gone or a zombie."""
    try:
        state, ppid = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[:2]
    except (OSError, ValueError):
        return None
    return None if state == "Z" else (state, int(ppid))


def _descendants(pid: int) -> set[int]:
    parents = {int(p.name): (_stat(int(p.name)) or ("", 0))[1]
               for p in Path("/proc").iterdir() if p.name.isdigit()}
    out, frontier = set(), {pid}
    while frontier:
        frontier = {c for c, parent in parents.items() if parent in frontier} - out
        out |= frontier
    return out


def _files(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and ".lock" not in p.name}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("whole")
    proc = _generate(out)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return _files(out)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_data_generation_interrupted_then_rerun(tmp_path, uninterrupted, sig):
    out = tmp_path / "cache"
    proc = _generate(out)
    children: set[int] = set()
    deadline = time.monotonic() + 300
    while len(list(out.rglob("train-*.npz"))) < 3:  # mid-generation: some shards written
        assert proc.poll() is None, f"generation ended first: {proc.stderr.read()}"
        assert time.monotonic() < deadline, "no shard was written"
        children |= _descendants(proc.pid)
        time.sleep(0.05)
    children |= _descendants(proc.pid)
    assert children, "the generation runs a worker pool"
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)  # Ctrl-C: the terminal signals the whole process group
    else:
        proc.send_signal(sig)  # `kill PID`, as a scheduler or systemd does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0] == ("equisweep data: interrupted" if sig == signal.SIGINT
                        else "equisweep data: terminated (SIGTERM)")
    deadline = time.monotonic() + 30
    while (alive := [p for p in children if _stat(p) is not None]):
        assert time.monotonic() < deadline, f"worker processes outlived the command: {alive}"
        time.sleep(0.1)
    (dataset,) = [p for p in out.iterdir() if p.is_dir()]
    names = {p.name for p in dataset.iterdir()}
    assert "manifest.json" not in names  # incomplete: nothing claims to be a dataset
    assert not [n for n in names if n.endswith(".tmp")], names  # no half-written file
    rerun = _generate(out)
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert _files(out) == uninterrupted


STUDY = ROOT / "docs" / "results" / "cpu-study" / "store"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_analyze_interrupted_leaves_the_last_report_whole(tmp_path, sig):
    """Interrupted while it fits (its progress line says so), analyze leaves the report of
    the previous run exactly as it was and no temporary file, and no process of its own."""
    out = tmp_path / "report"
    out.mkdir()
    before = {"fits.json": b'{"previous": true}', "report.html": b"<html>previous</html>"}
    for name, data in before.items():
        (out / name).write_bytes(data)
    proc = subprocess.Popen([sys.executable, "-m", "equisweep.cli", "analyze", "cpu-study",
                             "--store", str(STUDY), "--out", str(out), "--no-png"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(), start_new_session=True,
                            preexec_fn=_as_in_a_terminal)
    seen = []
    while not any("fitting" in line for line in seen):
        line = proc.stderr.readline()
        assert line, f"analyze ended before fitting: {seen}"
        seen.append(line)
    children = _descendants(proc.pid)
    if sig == signal.SIGINT:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + sig, err
    assert err.strip().splitlines() == [
        "equisweep analyze: interrupted" if sig == signal.SIGINT
        else "equisweep analyze: terminated (SIGTERM)"]
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    deadline = time.monotonic() + 30
    while (alive := [p for p in children | _descendants(proc.pid) if _stat(p) is not None]):
        assert time.monotonic() < deadline, f"processes outlived analyze: {alive}"
        time.sleep(0.1)
