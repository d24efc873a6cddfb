"""One driver per sweep, and a driver stopped by a signal says so.

Real `equisweep` subprocesses joined to a private `ray start --head` cluster. Trials wait at
a gate (`gate@10`, a gate the test never opens) so the first driver is provably mid-sweep
when a second driver or a resume is started, or when it gets its signal: no timing.

- A second `run` and a `resume` beside the live driver are refused before Ray: exit 2,
  one line naming the holder. Once the driver is SIGKILLed, its lease is stale (its pid is
  gone) and `resume` takes it over and completes every trial once.
- Ctrl-C (SIGINT) or SIGTERM mid-sweep: exit 130 / 143, a last line saying how to resume,
  no trial recorded finished that did not finish, `status` says `interrupted`; `resume`
  then completes every trial once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from equisweep.store import lease, open_store
from tests.reliability.conftest import reliability_sweep, write_yaml
from tests.reliability.drivers import Driver

pytestmark = pytest.mark.slow

STEPS, EVERY = 20, 10


def _sweep(tmp_path: Path, name: str) -> Path:
    return write_yaml(tmp_path / f"{name}.yaml", reliability_sweep(name, steps=STEPS, samples=1))


def _gate(tmp_path: Path) -> dict:
    return {"EQUISWEEP_FAULT": f"gate@{EVERY}", "EQUISWEEP_FAULT_DIR": str(tmp_path / "marks"),
            "EQUISWEEP_FAULT_GATE": str(tmp_path / "never-opened")}


def _wait_for_gated_trial(driver: Driver, marks: Path, timeout: float = 400) -> None:
    deadline = time.time() + timeout
    while not (marks.exists() and any(marks.iterdir())):
        assert driver.proc.poll() is None, f"driver ended early:\n{driver.tail()}"
        assert time.time() < deadline, f"no trial reached its gate:\n{driver.tail()}"
        time.sleep(0.2)


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k != "RAY_ADDRESS" and not k.startswith("EQUISWEEP_FAULT")}
    env.pop("RAY_AUTH_MODE", None)
    return subprocess.run([sys.executable, "-m", "equisweep.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def _assert_complete(store_path: Path, name: str) -> None:
    store = open_store(store_path)
    statuses = {r["key"]: r["status"] for r in store.trials(sweep=name).to_pylist()}
    assert len(statuses) == 2 and set(statuses.values()) == {"finished"}, statuses
    steps = sorted((r["key"], r["step"]) for r in store.metrics(sweep=name).to_pylist())
    assert steps == sorted((k, s) for k in statuses for s in range(EVERY, STEPS + 1, EVERY))
    assert store.check().ok


def test_a_second_driver_and_a_resume_are_refused_and_a_dead_drivers_lease_is_taken_over(
        head_cluster, tmp_path):
    address, _ = head_cluster
    name = "leased"
    store_path = tmp_path / "store"
    common = ["--store", str(store_path), "--address", address, "--shared-store"]
    first = Driver(["run", str(_sweep(tmp_path, name)), *common, "--no-progress"],
                   tmp_path / "first.log", _gate(tmp_path))
    _wait_for_gated_trial(first, tmp_path / "marks")
    for args in (["run", str(tmp_path / f"{name}.yaml"), *common], ["resume", name, *common]):
        out = _cli(args, tmp_path)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "already being run by another driver" in lines[0], lines
        assert f"pid {first.proc.pid}" in lines[0] and out.stdout == ""
    assert first.proc.poll() is None  # the live driver was not disturbed

    first.kill()  # a dead driver: its lease names a pid that no longer exists
    resumed = Driver(["resume", name, *common], tmp_path / "resume.log")
    assert resumed.wait() == 0, resumed.tail()
    _assert_complete(store_path, name)
    number, body = lease.holder(open_store(store_path), name)
    assert number == 2 and body["replaces"] == 1 and body["state"] == "ended"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_mid_sweep_exits_non_zero_saying_how_to_resume(head_cluster, tmp_path, sig):
    address, _ = head_cluster
    name = f"stopped-{sig.name.lower()}"
    store_path = tmp_path / "store"
    common = ["--store", str(store_path), "--address", address, "--shared-store"]
    driver = Driver(["run", str(_sweep(tmp_path, name)), *common, "--no-progress"],
                    tmp_path / "run.log", _gate(tmp_path))
    _wait_for_gated_trial(driver, tmp_path / "marks")
    os.kill(driver.proc.pid, sig)
    assert driver.wait(timeout=120) == 128 + sig, driver.tail()
    last = driver.log.read_text().strip().splitlines()[-1]
    assert f"interrupted by {sig.name}" in last and f"equisweep resume {name}" in last, last

    store = open_store(store_path)
    rows = store.metrics(sweep=name).to_pylist()
    for t in store.trials(sweep=name).to_pylist():  # nothing unfinished is called finished
        if t["status"] == "finished":
            assert max(r["step"] for r in rows if r["key"] == t["key"]) == STEPS
    status = _cli(["status", name, "--store", str(store_path), "--json"], tmp_path)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)[0]["interrupted"] >= 1, status.stdout

    resumed = Driver(["resume", name, *common], tmp_path / "resume.log")
    assert resumed.wait() == 0, resumed.tail()
    _assert_complete(store_path, name)


def _no_nan(token: str):
    raise AssertionError(f"not strict JSON: {token}")


def test_readers_work_beside_a_live_driver(head_cluster, tmp_path):
    """`query`, `status` and `store check` read a store while its driver writes into it:
    exit 0, strict JSON, and the driver is not disturbed (readers take no lease)."""
    address, _ = head_cluster
    name = "read-live"
    store_path = tmp_path / "store"
    driver = Driver(["run", str(_sweep(tmp_path, name)), "--store", str(store_path),
                     "--address", address, "--shared-store", "--no-progress"], tmp_path / "run.log",
                    _gate(tmp_path))
    try:
        _wait_for_gated_trial(driver, tmp_path / "marks")
        store = ["--store", str(store_path)]
        for args in (["query", name, *store, "--final", "--format", "json"],
                     ["status", name, *store, "--json"], ["store", "check", *store]):
            out = _cli(args, tmp_path)
            assert out.returncode == 0, (args, out.stderr)
            if "json" in " ".join(args):
                json.loads(out.stdout, parse_constant=_no_nan)
        status = json.loads(_cli(["status", name, *store, "--json"], tmp_path).stdout)[0]
        assert status["driver"] == "alive" and status["running"] >= 1, status
        assert driver.proc.poll() is None
    finally:
        driver.kill()



_CHECK = """
import sys, time
from equisweep.errors import UserError
from equisweep.sweep.session import check_this_machine_is_a_node, prepare
address, ips = sys.argv[1], sys.argv[2:]
prepare(address)  # as `run` does: auth set up before Ray is imported
if ips:  # the head's node must have registered with its GCS (it may lag under load)
    from ray._raylet import GcsClient
    deadline = time.monotonic() + 60
    while not any(n.state == 0 for n in GcsClient(address=address).get_all_node_info(
            timeout=5).values()) and time.monotonic() < deadline:
        time.sleep(0.5)
started = time.monotonic()
try:
    check_this_machine_is_a_node(address, local_ips=set(ips) if ips else None)
except UserError as err:
    print(f"refused in {time.monotonic() - started:.1f} s: {err}")
else:
    print("joins")
"""


@pytest.mark.parametrize("seen_from", ["this machine", "elsewhere", "a wrong port"])
def test_a_gcs_address_from_outside_the_cluster_is_refused_in_seconds(head_cluster, seen_from):
    """`run --address HOST:6379` joins as a driver on a node of the cluster; from a machine
    that is not one, Ray waits 60 s and fails or crashes natively. The real head's GCS is
    asked for its nodes: from this machine the check passes; seen from a machine with other
    addresses it is one line naming `submit` and `ray://`; a port with no GCS, one line."""
    address, _ = head_cluster
    host, port = address.rsplit(":", 1)
    args = {"this machine": [address], "elsewhere": [address, "198.51.100.7"],
            "a wrong port": [f"{host}:{int(port) - 1}"]}[seen_from]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    out = subprocess.run([sys.executable, "-c", _CHECK, *args], capture_output=True,
                         text=True, env=env, timeout=120).stdout.strip().splitlines()
    if seen_from == "this machine":
        assert out == ["joins"]
        return
    (line,) = out
    assert line.startswith("refused in ")
    assert float(line.split()[2]) < 5, line
    if seen_from == "elsewhere":
        assert "not a node of that cluster" in line
        assert f"equisweep submit SWEEP --address http://{host}:8265" in line
        assert f"ray://{host}:10001" in line
    else:
        assert "cannot reach a Ray cluster there" in line
