"""SIGKILL the `equisweep run` driver at three moments of a sweep, `equisweep resume` it each
time, and get exactly the store an uninterrupted run writes. Two sweeps writing one store
at once (the uninterrupted run and a second sweep) never collide.

Drivers are real `python -m equisweep.cli` subprocesses joined to a private
`ray start --head` cluster (the `head_cluster` fixture, which also fails the test if any
Ray process of that cluster outlives it).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from equisweep.store import open_store
from tests.reliability.conftest import raw_rows, reliability_sweep, write_yaml
from tests.reliability.drivers import Driver
from tests.reliability.helpers import COMPARED, same

pytestmark = pytest.mark.slow

NAME = "killed"
N_TRIALS, ROWS_PER_TRIAL = 4, 6
TOTAL_ROWS = N_TRIALS * ROWS_PER_TRIAL
# (moment, distinct stored (key, step) rows at which the driver is killed)
KILL_AT = [("first rows stored", 1), ("half the rows stored", TOTAL_ROWS // 2),
           ("near the end", TOTAL_ROWS - 4)]


def _distinct_rows(store: Path) -> int:
    return len({(r["key"], r["step"]) for r in raw_rows(store)})


def _kill_when(driver: Driver, store: Path, rows: int, timeout: float = 400) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        n = _distinct_rows(store)
        if n >= rows:
            assert driver.proc.poll() is None, f"driver ended before the kill:\n{driver.tail()}"
            driver.kill()
            return n
        assert driver.proc.poll() is None, f"driver ended early:\n{driver.tail()}"
        time.sleep(0.2)
    driver.kill()
    raise AssertionError(f"no {rows} rows within {timeout} s:\n{driver.tail()}")


def _table(store: Path, sweep: str) -> tuple[dict, dict]:
    s = open_store(store)
    metrics = {(r["key"], r["step"]): r for r in s.metrics(sweep=sweep).to_pylist()}
    final = {r["key"]: r for r in s.final(sweep=sweep).to_pylist()}
    return metrics, final


def test_driver_killed_three_times_then_resumed_equals_uninterrupted_run(
        head_cluster, tmp_path):
    address, _ = head_cluster
    spec = reliability_sweep(NAME, samples=N_TRIALS)
    spec["families"] = {"gatr": spec["families"]["gatr"]}  # uniform trials: even moments
    sweep_file = write_yaml(tmp_path / f"{NAME}.yaml", spec)
    other = reliability_sweep("other", samples=2)
    other["families"] = {"transformer": other["families"]["transformer"]}
    other_file = write_yaml(tmp_path / "other.yaml", other)
    base, killed = tmp_path / "base", tmp_path / "killed"
    common = ["--address", address, "--shared-store", "--no-progress"]

    # Uninterrupted reference, written at the same time as a second sweep into one store.
    a = Driver(["run", str(sweep_file), "--store", str(base), *common], tmp_path / "base.log")
    b = Driver(["run", str(other_file), "--store", str(base), *common], tmp_path / "other.log")
    assert a.wait() == 0, a.tail()
    assert b.wait() == 0, b.tail()

    # Three kills: during `run`, then during each of two `resume`s; a last resume finishes.
    moments = []
    driver = Driver(["run", str(sweep_file), "--store", str(killed), *common],
                    tmp_path / "kill-0.log")
    for i, (moment, rows) in enumerate(KILL_AT, start=1):
        stored = _kill_when(driver, killed, rows)
        moments.append((moment, stored))
        driver = Driver(["resume", NAME, "--store", str(killed), "--address", address,
                         "--shared-store"], tmp_path / f"kill-{i}.log")
    assert driver.wait() == 0, driver.tail()
    print("kill moments (moment, distinct rows stored):", moments)
    assert [m[1] for m in moments] == sorted({m[1] for m in moments})  # distinct, in order

    # The resumed store reads exactly as the uninterrupted one.
    ref_metrics, ref_final = _table(base, NAME)
    got_metrics, got_final = _table(killed, NAME)
    assert len(ref_final) == N_TRIALS and len(ref_metrics) == TOTAL_ROWS
    assert got_metrics.keys() == ref_metrics.keys()
    for k, ref in ref_metrics.items():
        for col in COMPARED:
            assert same(got_metrics[k][col], ref[col]), (k, col, got_metrics[k][col], ref[col])
    assert got_final.keys() == ref_final.keys()
    for key, ref in ref_final.items():
        assert got_final[key]["status"] == "finished"
        assert got_final[key]["test_loss"] == ref["test_loss"]
        assert got_final[key]["config"] == ref["config"]
    assert open_store(killed).check().ok

    # Concurrent writers: both sweeps complete, every row written exactly once, no file
    # shared, nothing damaged.
    store = open_store(base)
    assert store.sweeps() == sorted([NAME, "other"])
    assert len(store.trials(sweep="other")) == 2
    assert {t["status"] for t in store.trials().to_pylist()} == {"finished"}
    raw = Counter((r["sweep"], r["key"], r["step"]) for r in raw_rows(base))
    assert len(raw) == TOTAL_ROWS + 2 * ROWS_PER_TRIAL and set(raw.values()) == {1}
    report = store.check()
    assert report.ok and not report.leftovers
