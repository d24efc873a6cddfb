"""`analyze --watch` right after `submit`: waits for the sweep, then follows its driver."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

from equisweep.analysis.watch import watch
from equisweep.store import appear, open_store
from equisweep.store.heartbeat import write_beat


def test_watch_waits_for_the_sweep_then_writes_the_final_report(tmp_path, monkeypatch):
    monkeypatch.setattr(appear, "POLL_S", 0.05)
    uri = str(tmp_path / "results")
    waiting, analysed = threading.Event(), threading.Event()

    def driver_elsewhere():
        waiting.wait(5)
        store = open_store(uri)
        store.write_sweep_meta("late", {"name": "late"})
        analysed.wait(5)  # the driver's first beat comes after its metadata (and a round)
        write_beat(store, "late", {"host": "elsewhere", "pid": 1, "started_at": time.time(),
                                   "beat_at": time.time(), "interval_s": 60, "state": "ended"})

    said, rounds = [], []

    def say(text, **_):
        said.append(text)
        waiting.set()

    def analyze_once():
        rounds.append(time.monotonic())
        analysed.set()
        return SimpleNamespace(summary="final summary", out_dir=tmp_path / "out")

    worker = threading.Thread(target=driver_elsewhere)
    worker.start()
    try:
        rc = watch(uri, "late", str(tmp_path / "out"), 0.05, analyze_once, say=say, wait_s=30)
    finally:
        worker.join()
    assert rc == 0
    assert said[0].startswith("waiting up to 30 s for sweep late to appear")
    assert said[-1] == "final summary"
    # Metadata without a beat counts as a driver starting: rounds go on until the "ended"
    # beat, then one last round writes the final report.
    assert len(rounds) >= 2
