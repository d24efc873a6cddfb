"""Fixtures for the fault tests: a private `ray start --head` cluster, sweep files, and
helpers that read the store's raw files (what was actually written, before dedup)."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

import pyarrow.dataset as pads
import pytest
import yaml

from tests.conftest import free_port, ray_head
from tests.sweep.conftest import tiny_sweep_dict

RAY_PROCESS_NAMES = ("raylet", "gcs_server", "default_worker", "dashboard", "log_monitor",
                     "runtime_env", "monitor.py")


def reliability_sweep(name: str, *, steps: int = 60, samples: int = 2, **overrides) -> dict:
    """Both families, random search (deterministic hparams): `2 * samples` trials of `steps`
    steps, a metric row every 10 steps and a checkpoint every 20."""
    d = tiny_sweep_dict(
        name,
        grid={"steps": [steps], "train_trajectories": [8], "seed": [0]},
        search={"method": "random", "samples_per_cell": samples,
                "params": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}}},
        training={"batch_size": 4, "eval_every": 10, "checkpoint_every": 20},
    )
    d.update(overrides)
    return d


def write_yaml(path: Path, spec: dict) -> Path:
    path.write_text(yaml.safe_dump(spec))
    return path


def raw_rows(store: Path, kind: str = "metrics") -> list[dict]:
    """Every row in the store's visible files, duplicates and all."""
    folder = store / kind
    if not folder.exists():
        return []
    try:
        return pads.dataset(str(folder), format="parquet",
                            partitioning="hive").to_table().to_pylist()
    except (OSError, ValueError):
        return []  # a fragment renamed into place between listing and reading


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """(pid, command line) of live processes whose command line matches regex `text`."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        cmd = raw.replace(b"\0", b" ").decode(errors="replace")
        if re.search(text, cmd) and state != "Z":
            out.append((int(pid), cmd))
    return out


def wait_gone(text: str, timeout: float = 60) -> list[tuple[int, str]]:
    deadline = time.time() + timeout
    left = processes_mentioning(text)
    while left and time.time() < deadline:
        time.sleep(0.5)
        left = processes_mentioning(text)
    return left


@pytest.fixture(scope="module")
def head_cluster(tmp_path_factory):
    """A one-node Ray cluster in its own process group (`ray start --head --block`).

    Drivers run as subprocesses that join it, so SIGKILLing a driver kills only the
    driver. On teardown `ray start` gets SIGTERM, and the test fails if any Ray process
    that names this cluster's GCS port outlives it.
    """
    port = free_port()
    log = tmp_path_factory.mktemp("head") / "ray-start.log"
    address = f"127.0.0.1:{port}"
    marker = rf"[:=]{port}\b"  # raylet/workers: --gcs-address=IP:PORT, GCS: --..port=PORT
    with ray_head(f"--port={port}", "--include-dashboard=false", log=log) as proc:
        _wait_for_gcs(port, proc, log)
        yield address, marker
    orphans = [p for p in wait_gone(marker) if any(n in p[1] for n in RAY_PROCESS_NAMES)]
    for pid, _ in orphans:
        os.kill(pid, signal.SIGKILL)  # clean up, then fail loudly
    assert not orphans, f"Ray processes outlived the test cluster: {orphans}"


def _wait_for_gcs(port: int, proc, log: Path, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ray start exited: {log.read_text()[-2000:]}")
        if any("raylet" in cmd for _, cmd in processes_mentioning(rf"[:=]{port}\b")):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    time.sleep(2)  # raylet registers with the GCS
                    return
        time.sleep(0.5)
    raise AssertionError(f"Ray head did not come up: {log.read_text()[-2000:]}")
