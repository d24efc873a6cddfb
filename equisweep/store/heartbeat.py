"""The driver's heartbeat: how `status` tells a running trial from one whose driver is gone.

While a sweep runs, its driver rewrites `<store>/_driver/sweep=<name>/heartbeat.json` every
`interval_s` seconds (atomically: temp name + rename) with its host, pid, start time and the
time of the beat; when the sweep ends it writes `state: "ended"`. A reader calls the driver

- alive: the last beat is younger than `STALE_BEATS` intervals, and, when the driver ran on
  this host, its pid still exists (so a killed local driver is seen at once, not after a
  timeout);
- gone: otherwise, or after an "ended" beat.

Trials whose latest row says "running" while the driver is gone are `interrupted`.
The folder starts with '_' so Parquet readers (ours, pandas, DuckDB) skip it.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

from equisweep.store import location
from equisweep.store.layout import driver_dir
from equisweep.store.naming import validate_sweep_name

FILE = "heartbeat.json"
STALE_BEATS = 4
DEFAULT_INTERVAL_S = 10.0


def _dir(store, sweep: str) -> str:
    return driver_dir(store.root, validate_sweep_name(sweep))


def write_beat(store, sweep: str, beat: dict) -> None:
    text = json.dumps(beat, sort_keys=True).encode()

    def write(fs, path):
        with fs.open_output_stream(path) as f:
            f.write(text)

    location.atomic_write(store.filesystem, _dir(store, sweep), FILE, write)


def read_beat(store, sweep: str) -> dict | None:
    """The last beat, or None when the sweep has none (never run by this version, or a
    beat that cannot be read)."""
    try:
        with store.filesystem.open_input_stream(f"{_dir(store, sweep)}/{FILE}") as f:
            beat = json.loads(f.read().decode())
    except (FileNotFoundError, OSError, ValueError, UnicodeDecodeError):
        return None
    return beat if isinstance(beat, dict) else None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def driver_alive(beat: dict | None, now: float | None = None) -> bool | None:
    """True/False from a beat; None when there is no beat to judge by."""
    if not beat:
        return None
    if beat.get("state") == "ended":
        return False
    now = time.time() if now is None else now
    interval = float(beat.get("interval_s") or DEFAULT_INTERVAL_S)
    if now - float(beat.get("beat_at") or 0.0) > STALE_BEATS * interval:
        return False
    if beat.get("host") == socket.gethostname() and isinstance(beat.get("pid"), int):
        return _pid_exists(beat["pid"])
    return True


class Heartbeat:
    """A daemon thread that beats until stopped; `stop()` writes the "ended" beat.

    `extra` (a callable returning a dict) adds live numbers to each beat — the driver puts
    its planned FLOPs and trial count there for `status`.
    """

    def __init__(self, store, sweep: str, interval_s: float | None = None, extra=None):
        self.store, self.sweep = store, validate_sweep_name(sweep)
        env = os.environ.get("EQUISWEEP_HEARTBEAT_S")
        self.interval_s = float(interval_s or env or DEFAULT_INTERVAL_S)
        self.extra = extra or (lambda: {})
        self.started_at = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="equisweep-heartbeat",
                                        daemon=True)

    def beat(self, state: str = "running") -> None:
        write_beat(self.store, self.sweep, {
            "state": state, "host": socket.gethostname(), "pid": os.getpid(),
            "started_at": self.started_at, "beat_at": time.time(),
            "interval_s": self.interval_s, **self.extra(),
        })

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.beat()
            except OSError:
                pass  # a store hiccup; the next beat retries, readers allow STALE_BEATS

    def start(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        try:
            self.beat("ended")
        except OSError:
            pass  # readers fall back to the stale-beat rule
