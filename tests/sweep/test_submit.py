"""`equisweep submit` against a real `ray start --head` cluster, with token auth on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from equisweep.store import open_store
from tests.conftest import free_port, ray_head

pytestmark = pytest.mark.slow


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
def head_node():
    dash = free_port()
    with ray_head(f"--port={free_port()}", f"--dashboard-port={dash}",
                  "--dashboard-host=127.0.0.1", "--include-dashboard=true"):
        url = f"http://127.0.0.1:{dash}"
        yield url, _wait_for_dashboard(url)


def test_submit_runs_the_sweep_as_a_ray_job(head_node, write_sweep, tmp_path):
    url, anonymous_status = head_node
    assert anonymous_status == 401  # token auth is on: no token, no dashboard
    store = tmp_path / "store"
    sweep = write_sweep("submitted", search={"method": "random", "samples_per_cell": 1,
                                             "params": {"lr": {"loguniform": [1e-3, 1e-2]}}})
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    out = subprocess.run(
        [sys.executable, "-m", "equisweep.cli", "submit", str(sweep), "--address", url,
         "--store", str(store), "--shared-store", "--follow"],
        capture_output=True, text=True, timeout=600, env=env,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "SUCCEEDED" in out.stdout
    assert "dashboard: " + url in out.stdout
    # The job log that --follow streams shows the sweep as it runs: a line per trial event.
    followed = out.stdout + out.stderr
    assert len(re.findall(r"\] started \S+", followed)) == 2, followed
    assert len(re.findall(r"\] finished \S+ on \S+: val [\d.e-]+", followed)) == 2, followed
    assert re.search(r"sweep submitted: 2/2 trials ended \| run 0 \| done 2", followed)
    # The console is equisweep's: not the job SDK's own INFO lines (upload, WebSocket).
    assert not re.search(r"(dashboard_sdk|sdk)\.py:\d+ -- ", followed), followed
    trials = open_store(store).trials(sweep="submitted").to_pylist()
    assert len(trials) == 2 and {t["status"] for t in trials} == {"finished"}


def test_submit_refuses_bad_address(write_sweep):
    from equisweep.cli import main

    assert main(["submit", str(write_sweep()), "--address", "not-a-url"]) == 2


@pytest.mark.parametrize("store_args", [[], ["--store", "results"]])
def test_submit_refuses_a_local_store_nobody_declared_shared(write_sweep, store_args):
    """Issue 20: the laptop path went to the cluster and every trial failed after 318 s.
    Now: one line naming `--store s3://`, exit 2, within 10 s, with no cluster to reach."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "EQUISWEEP_STORE")}
    start = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-m", "equisweep.cli", "submit", str(write_sweep()),
         "--address", "http://127.0.0.1:9", *store_args],
        capture_output=True, text=True, timeout=60, env=env,
    )
    assert time.monotonic() - start < 10
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--store s3://" in lines[0] and "--shared-store" in lines[0]
    assert "submitted" not in out.stdout


def test_submit_names_a_mistyped_bucket_before_anything_starts(write_sweep):
    """Issue 20: a mistyped bucket cost 32 s and a 30-line traceback, exit 1."""
    from tests.reliability.s3 import moto_s3

    with moto_s3("real-bucket"):
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        start = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-m", "equisweep.cli", "submit", str(write_sweep()),
             "--address", "http://127.0.0.1:9", "--store", "s3://reel-bucket/x"],
            capture_output=True, text=True, timeout=60, env=env,
        )
        assert time.monotonic() - start < 10  # interpreter start-up included
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "reel-bucket" in lines[0]
