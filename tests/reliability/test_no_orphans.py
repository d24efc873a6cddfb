"""Process hygiene: the embedded Ray does not outlive its driver.

A real `equisweep run` on the embedded Ray is killed while its trials run (they wait at a
`gate@10` fault, so workers, agents and the dashboard are all up); every process the
driver started, Ray's renamed ones (`ray::DashboardAgent`, `ray::RuntimeEnvAgent`,
`ray::IDLE`) included, is gone afterwards. The watchdog itself is also tested on plain
processes: it ends what carries its owner token and nothing else.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from equisweep.sweep import watchdog
from tests.reliability.conftest import write_yaml
from tests.sweep.conftest import tiny_sweep_dict

ROOT = Path(__file__).resolve().parents[2]


def _stat(pid: int) -> tuple[int, str] | None:
    """(ppid, start time) of a live, non-zombie process, else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else (int(fields[1]), fields[19])


def _descendants(root: int) -> dict[int, str]:
    """pid -> start time of every live descendant of `root`."""
    children: dict[int, list[int]] = {}
    for p in os.listdir("/proc"):
        if p.isdigit() and (st := _stat(int(p))):
            children.setdefault(st[0], []).append(int(p))
    out, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if (st := _stat(child)) and child not in out:
                out[child] = st[1]
                todo.append(child)
    return out


def _alive(procs: dict[int, str]) -> dict[int, str]:
    """Those of `procs` still running (same pid and start time: not a reused pid)."""
    return {p: t for p, t in procs.items() if (st := _stat(p)) and st[1] == t}


def _wait_gone(procs: dict[int, str], timeout: float = 90) -> dict[int, str]:
    deadline = time.time() + timeout  # a safety net: the watchdog acts on the pipe's EOF
    left = _alive(procs)
    while left and time.time() < deadline:
        time.sleep(0.5)
        left = _alive(procs)
    return left


def _cmd(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except OSError:
        return "?"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigkill_driver", "sigkill_process_group"])
def test_killed_driver_leaves_no_ray_process(tmp_path, how):
    spec = tiny_sweep_dict("orphans", store=str(tmp_path / "store"))
    sweep_file = write_yaml(tmp_path / "orphans.yaml", spec)
    faults = tmp_path / "faults"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(EQUISWEEP_FAULT="gate@10", EQUISWEEP_FAULT_DIR=str(faults / "fired"),
               EQUISWEEP_FAULT_GATE=str(faults / "never-opened"))
    log = open(tmp_path / "driver.log", "wb")
    driver = subprocess.Popen([sys.executable, "-m", "equisweep.cli", "run", str(sweep_file),
                               "--no-progress"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not ((faults / "fired").is_dir() and len(list((faults / "fired").iterdir()))
                   >= 2):
            assert driver.poll() is None, (tmp_path / "driver.log").read_text()[-3000:]
            assert time.time() < deadline, "trials never reached the gate"
            time.sleep(0.2)
        procs = _descendants(driver.pid)
        names = " ".join(_cmd(p) for p in procs)
        assert "raylet" in names and "gcs_server" in names, names
        assert any("ray::" in _cmd(p) for p in procs), names  # renamed workers/agents
        if how == "sigkill_driver":
            os.kill(driver.pid, signal.SIGKILL)
        else:
            os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        log.close()
    left = _wait_gone(procs)
    for pid in left:  # clean up, then fail loudly
        os.kill(pid, signal.SIGKILL)
    assert not left, {p: _cmd(p) for p in left}


def _fake_driver(tmp_path: Path) -> subprocess.Popen:
    """A driver that starts the watchdog, then two 'Ray' processes carrying the owner
    token (one renames itself, as Ray's do) and a bystander without it."""
    code = f"""
import os, subprocess, sys, time
from equisweep.sweep import watchdog
handle, owner = watchdog.start()
env = dict(os.environ, **{{watchdog.MARKER: owner}})
ray = [subprocess.Popen(["sleep", "600"], env=env, start_new_session=True),
       subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)]
other = subprocess.Popen(["sleep", "601"], start_new_session=True)
open({str(tmp_path / 'pids')!r}, "w").write(" ".join(str(p.pid) for p in ray + [other]))
time.sleep(600)
"""
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)


def test_watchdog_ends_what_its_driver_started_and_nothing_else(tmp_path):
    driver = _fake_driver(tmp_path)
    pids_file = tmp_path / "pids"
    deadline = time.time() + 60
    while not pids_file.exists() or not pids_file.read_text():
        assert time.time() < deadline and driver.poll() is None
        time.sleep(0.1)
    *ours, other = (int(p) for p in pids_file.read_text().split())
    procs = {p: _stat(p)[1] for p in ours}
    bystander = {other: _stat(other)[1]}
    try:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(timeout=30)
        assert not _wait_gone(procs, timeout=60), {p: _cmd(p) for p in _alive(procs)}
        assert _alive(bystander) == bystander  # not carrying the token: not ours
    finally:
        for pid in list(_alive(procs)) + list(_alive(bystander)):
            os.kill(pid, signal.SIGKILL)


def test_watchdog_after_a_clean_exit_ends_nothing_and_exits(tmp_path):
    handle, owner = watchdog.start()
    assert watchdog.cluster_processes(owner) == []
    handle.stdin.close()  # what the driver's exit does
    assert handle.wait(timeout=60) == 0


def test_watchdog_ends_a_process_that_starts_after_its_driver_died(tmp_path):
    """A 'Ray' process still starting when the driver dies (under load, an agent whose
    launch began just before) appears only after the watchdog's first pass; it is ended
    too. Here a launcher without the token waits for the driver's death, then starts a
    token-carrying process 1.5 s later, once every earlier one is gone."""
    launcher = tmp_path / "launcher.py"
    launcher.write_text(f"""
import os, subprocess, sys, time
owner, out, driver = sys.argv[1], sys.argv[2], int(sys.argv[3])
while os.getppid() == driver:
    time.sleep(0.05)
time.sleep(1.5)
late = subprocess.Popen(["sleep", "602"], env=dict(os.environ, {watchdog.MARKER}=owner),
                        start_new_session=True)
open(out, "w").write(str(late.pid))
""")
    code = f"""
import os, subprocess, sys, time
from equisweep.sweep import watchdog
handle, owner = watchdog.start()
env = dict(os.environ, **{{watchdog.MARKER: owner}})
early = subprocess.Popen(["sleep", "600"], env=env, start_new_session=True)
subprocess.Popen([sys.executable, {str(launcher)!r}, owner, {str(tmp_path / 'late')!r},
                  str(os.getpid())], start_new_session=True)
open({str(tmp_path / 'pids')!r}, "w").write(str(early.pid))
time.sleep(600)
"""
    driver = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    pids_file, late_file = tmp_path / "pids", tmp_path / "late"
    deadline = time.time() + 60
    while not pids_file.exists() or not pids_file.read_text():
        assert time.time() < deadline and driver.poll() is None
        time.sleep(0.1)
    early = int(pids_file.read_text())
    procs = {early: _stat(early)[1]}
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait(timeout=30)
    try:
        while not late_file.exists() or not late_file.read_text():
            assert time.time() < deadline + 60, "the launcher never started its process"
            time.sleep(0.1)
        late = int(late_file.read_text())
        if (st := _stat(late)) is not None:
            procs[late] = st[1]
        assert not _wait_gone(procs, timeout=60), {p: _cmd(p) for p in _alive(procs)}
    finally:
        for pid in _alive(procs):
            os.kill(pid, signal.SIGKILL)
