"""`equisweep submit` against a real `ray start --head` cluster, with token auth on."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from equisweep.store import open_store
from tests.conftest import ray_head_env

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_dashboard(url: str, timeout: float = 90) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            return urllib.request.urlopen(f"{url}/api/version", timeout=2).status
        except urllib.error.HTTPError as exc:
            return exc.code  # up, and refusing us without a token
        except OSError:
            time.sleep(1)
    raise AssertionError(f"dashboard at {url} did not come up")


@pytest.fixture
def head_node(tmp_path):
    gcs, dash = _free_port(), _free_port()
    env = ray_head_env()
    proc = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
         f"--port={gcs}", f"--dashboard-port={dash}", "--dashboard-host=127.0.0.1",
         "--num-cpus=2", "--include-dashboard=true", "--disable-usage-stats",
         f"--ray-client-server-port={_free_port()}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{dash}"
    try:
        yield url, _wait_for_dashboard(url)
    finally:
        # SIGTERM to `ray start --block` alone drains and stops just this cluster;
        # signalling the whole group kills the GCS first and the drain hangs.
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_submit_runs_the_sweep_as_a_ray_job(head_node, write_sweep, tmp_path):
    url, anonymous_status = head_node
    assert anonymous_status == 401  # token auth is on: no token, no dashboard
    store = tmp_path / "store"
    sweep = write_sweep("submitted", search={"method": "random", "samples_per_cell": 1,
                                             "params": {"lr": {"loguniform": [1e-3, 1e-2]}}})
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run(
        [sys.executable, "-m", "equisweep.cli", "submit", str(sweep), "--address", url,
         "--store", str(store), "--follow"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "SUCCEEDED" in out.stdout
    assert "dashboard: " + url in out.stdout
    trials = open_store(store).trials(sweep="submitted").to_pylist()
    assert len(trials) == 2 and {t["status"] for t in trials} == {"finished"}


def test_submit_refuses_bad_address(write_sweep):
    from equisweep.cli import main

    assert main(["submit", str(write_sweep()), "--address", "not-a-url"]) == 2
