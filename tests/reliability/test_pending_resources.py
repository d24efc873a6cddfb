"""A joined cluster that has no node for a trial's resources (it might autoscale): the
driver says what is pending, waits at most EQUISWEEP_PENDING_TIMEOUT_S, and gives up with
exit 2 and the numbers, instead of Tune waiting forever without a word."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.reliability.conftest import write_yaml
from tests.sweep.conftest import tiny_sweep_dict

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("resources, pending", [({"cpu": 1, "gpu": 1}, "1 GPUs"),
                                                ({"cpu": 64}, "64 CPUs")])
def test_unavailable_resources_on_a_cluster_give_up_after_the_documented_wait(
        head_cluster, tmp_path, resources, pending):
    address, _ = head_cluster
    spec = tiny_sweep_dict("pending", store=str(tmp_path / "store"), resources=resources)
    sweep_file = write_yaml(tmp_path / "pending.yaml", spec)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["EQUISWEEP_PENDING_TIMEOUT_S"] = "3"
    out = subprocess.run([sys.executable, "-m", "equisweep.cli", "run", str(sweep_file),
                          "--address", address, "--shared-store", "--no-progress"],
                         cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2, out.stdout[-2000:] + out.stderr[-2000:]
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("equisweep")]
    assert any("pending" in ln and pending in ln for ln in lines), out.stderr
    assert any("error" in ln and "after 3 s" in ln and "EQUISWEEP_PENDING_TIMEOUT_S" in ln
               for ln in lines), out.stderr
    assert "Traceback" not in out.stderr
