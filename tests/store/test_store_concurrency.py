"""Several writers — threads and processes, same or different sweeps — never collide."""

from __future__ import annotations

import multiprocessing as mp
import threading

from storehelp import metric, trial

from equisweep.store import open_store


def _write(root: str, sweep: str, who: str, n: int) -> None:
    store = open_store(root)
    with store.writer(sweep, max_rows=7, max_delay_s=0.0) as w:
        for i in range(n):
            w.add_trial(trial(f"{who}-{i}", status="finished"))
            w.add_metrics([metric(f"{who}-{i}", s) for s in range(3)])


def _check(root: str, expected: dict[str, int]) -> None:
    store = open_store(root)
    for sweep, n in expected.items():
        assert len(store.done_keys(sweep)) == n
        assert store.metrics(sweep).num_rows == 3 * n
        assert store.final(sweep).num_rows == n
    assert store.check().ok


def test_threads_into_one_store(tmp_path):
    root = str(tmp_path / "results")
    jobs = [("sw1", "t0"), ("sw1", "t1"), ("sw2", "t2"), ("sw2", "t3")]
    threads = [threading.Thread(target=_write, args=(root, s, who, 40)) for s, who in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _check(root, {"sw1": 80, "sw2": 80})


def test_processes_into_one_store(tmp_path):
    root = str(tmp_path / "results")
    ctx = mp.get_context("fork")
    jobs = [("sw1", "p0"), ("sw1", "p1"), ("sw2", "p2")]
    procs = [ctx.Process(target=_write, args=(root, s, who, 40)) for s, who in jobs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    _check(root, {"sw1": 80, "sw2": 40})
