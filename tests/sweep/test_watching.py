"""Watching a real sweep from the console: what `equisweep run` prints, the live report,
`status` on a running sweep, and trials of a killed driver shown as interrupted.

Drivers are real `python -m equisweep.cli run` subprocesses with their own embedded Ray
(in their own process group, so killing the group kills the driver and its Ray). A running
sweep is held still by the `gate` fault (a gate file, not a timer), so what the test looks
at is certainly a sweep in progress.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.sweep.conftest import tiny_sweep_dict

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHATTER = ("WARNING", "TensorBoard", "Traceback", "RuntimeWarning", "Warning:",
           "Configuration for experiment", "View detailed results", "Token authentication",
           "experiment state", "Experiment state")
SAFETY_S = 300  # a safety net only: every wait below ends on an event


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k != "RAY_ADDRESS" and not k.startswith("EQUISWEEP_FAULT")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "equisweep.cli", *map(str, args)],
                          capture_output=True, text=True, env=env or _env(), timeout=SAFETY_S)


def _wait_for(what: str, check, proc=None):
    deadline = time.monotonic() + SAFETY_S
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"driver ended (rc {proc.returncode}) before {what}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def sweep_files(tmp_path_factory):
    base = tmp_path_factory.mktemp("watch")
    first = tiny_sweep_dict("watched", store=str(base / "store"))
    # Four new trials in new cells (a second training length); the first run's cells are done.
    more = dict(first, grid=dict(first["grid"], steps=[20, 30]))
    (base / "first.yaml").write_text(yaml.safe_dump(first))
    (base / "more.yaml").write_text(yaml.safe_dump(more))
    return base


@pytest.fixture(scope="module")
def first_run(sweep_files):
    out = _cli("run", sweep_files / "first.yaml", "--report")
    return sweep_files, out


def test_console_shows_only_equisweep_lines(first_run):
    base, out = first_run
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    for chatter in CHATTER:
        assert chatter not in text, (chatter, text[-3000:])
    assert re.search(r"^Ray dashboard: http://127\.0\.0\.1:\d+$", out.stdout, re.M)
    log = Path(re.search(r"^Ray and Tune log: (.+)$", out.stdout, re.M).group(1))
    assert log.parent == base / "store" / "_logs"
    assert out.stdout.count("Ray and Tune log:") == 1
    # The chatter is in the log, not lost.
    logged = log.read_text()
    assert "Configuration for experiment" in logged and "Token authentication" in logged
    # Not a terminal (a pipe, as a job log is): a line per trial event, not a redrawn bar,
    # and a last progress line with the counts and the best per variant.
    assert "\r" not in out.stderr
    assert len(re.findall(r"^\[\d\d:\d\d:\d\d\] started \S+-\w{8}$", out.stderr, re.M)) == 4
    assert len(re.findall(r"^\[\d\d:\d\d:\d\d\] finished \S+-\w{8} on \S+: val [\d.e-]+ "
                          r"± [\d.e-]+ at step 20$", out.stderr, re.M)) == 4, out.stderr
    assert re.search(r"sweep watched: 4/4 trials ended \| run 0 \| done 4 \| failed 0 \| gatr val "
                     r"[\d.e-]+ \| transformer\+aug val", out.stderr), out.stderr[-2000:]
    assert "sweep watched: ran 4 trials (0 failed" in out.stdout
    for command in ("status", "best", "query", "analyze"):
        assert f"  equisweep {command} watched --store {base / 'store'}" in out.stdout
    # --report: the final report once the sweep ended.
    report = base / "store" / "reports" / "watched" / "report.html"
    assert f"report: {report}" in out.stdout and report.stat().st_size > 0


def test_running_sweep_status_live_report_then_killed_driver(first_run):
    base, _ = first_run
    store = base / "store"
    gate = base / "gate"
    env = _env(EQUISWEEP_FAULT="gate@10", EQUISWEEP_FAULT_GATE=str(gate),
               EQUISWEEP_HEARTBEAT_S="0.5")
    console = open(base / "driver.out", "w")
    driver = subprocess.Popen(
        [sys.executable, "-m", "equisweep.cli", "run", str(base / "more.yaml"), "--report",
         "--report-every", "0.5", "--no-progress"],
        stdout=console, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        def status():
            got = _cli("status", "watched", "--store", store, "--json")
            assert got.returncode == 0, got.stderr
            return json.loads(got.stdout)[0]

        # Two trials run (held at the gate once step 10 is reported), two wait for a slot.
        st = _wait_for("two running trials with an ETA",
                       lambda: (s := status())["running"] == 2 and s["eta_s"] is not None
                       and s, driver)
        assert (st["planned"], st["pending"], st["finished"]) == (8, 2, 4)
        assert st["driver"] == "alive" and st["flops"] > 0
        assert st["planned_flops"] > st["flops"]
        assert {b["variant"] for b in st["best"]} == {"gatr", "transformer+aug"}
        table = _cli("status", "watched", "--store", store)
        header, row = table.stdout.splitlines()[:2]
        assert header.split()[:10] == ["SWEEP", "PLANNED", "PENDING", "RUNNING", "RETRYING",
                                       "FINISHED", "FAILED", "DIVERGED", "INTERRUPTED",
                                       "SKIPPED"]
        assert row.split()[:10] == ["watched", "8", "2", "2", "0", "4", "0", "0", "0", "0"]
        assert re.search(r"\b\d+(m\d\ds|s|h\d\dm)\s+alive$", row), row

        # The live report is rewritten from the store while the trials are still held.
        log = Path(_wait_for("the log path", lambda: re.search(
            r"^Ray and Tune log: (.+)$", (base / "driver.out").read_text(), re.M), driver)
            .group(1))
        _wait_for("two live rewrites",
                  lambda: log.read_text().count("live report rewritten") >= 2, driver)
        assert (store / "reports" / "watched" / "report.html").is_file()
        assert not list((store / "reports" / "watched").glob(".*.tmp"))
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and its embedded Ray
        driver.wait(timeout=60)
        console.close()
    st = status()
    assert (st["running"], st["interrupted"], st["driver"]) == (0, 2, "gone")
    assert st["eta_s"] is None
    table = _cli("status", "watched", "--store", store).stdout
    assert table.splitlines()[1].split()[:10] == ["watched", "8", "2", "0", "0", "4", "0",
                                                  "0", "2", "0"]
