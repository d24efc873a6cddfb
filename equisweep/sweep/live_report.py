"""`equisweep run … --report`: rewrite the HTML report from the store while the sweep runs.

Each rewrite is a separate `equisweep analyze` process (what a user would run by hand): it
reads only the store, so it sees exactly what `query` sees; a failing or slow analysis
never stalls the Tune driver; and the fits' CPU work is not under the driver's GIL. The
analysis writes report.html under a temporary name and renames it (no reader ever sees a
half-written report). Live rewrites use fewer bootstrap resamples (`LIVE_BOOTSTRAP`); the
final one, when the sweep ends, uses the analysis defaults.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

LIVE_BOOTSTRAP = 50


class LiveReport:
    def __init__(self, store_uri: str, sweep: str, every_s: float = 180.0, log=None):
        from equisweep.analysis.cli_analyze import default_out

        self.store_uri, self.sweep = store_uri, sweep
        self.every_s = max(0.1, float(every_s))
        self.out = Path(default_out(store_uri, sweep))
        self.html = self.out / "report.html"
        self._log = log  # a QuietConsole (or None: output inherits the console)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="equisweep-live-report",
                                        daemon=True)
        self.rewrites = 0

    def _analyze(self, bootstrap: int | None) -> bool:
        cmd = [sys.executable, "-m", "equisweep.cli", "analyze", self.sweep,
               "--store", self.store_uri, "--out", str(self.out), "--no-png"]
        if bootstrap is not None:
            cmd += ["--bootstrap", str(bootstrap)]
        path = getattr(self._log, "path", None)
        out = open(path, "a") if path else None  # noqa: SIM115 (closed below)
        try:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT if out else None,
                                stdin=subprocess.DEVNULL, env=dict(os.environ)).returncode
        finally:
            if out is not None:
                out.close()
        if rc == 0:
            self.rewrites += 1
        if self._log is not None:
            self._log.note(f"equisweep: live report {'rewritten' if rc == 0 else 'not written'}"
                           f" ({self.rewrites} so far, exit {rc}) at {time.strftime('%X')}")
        return rc == 0

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self._analyze(LIVE_BOOTSTRAP)

    def start(self) -> LiveReport:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop rewriting (an analysis already running finishes first)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def final(self) -> bool:
        """The report of the finished sweep, with full bootstrap intervals."""
        return self._analyze(None)
