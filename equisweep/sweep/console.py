"""What a sweep's console shows: equisweep's own lines; Ray's and Tune's chatter goes to a log.

Ray and Tune talk on three channels, each diverted here while a sweep runs quietly:

- Python logging under the `ray` logger (the token-auth notice of the embedded Ray, Tune's
  experiment-state snapshot warnings, ...). `ray.init(configure_logging=False)` clears the
  `ray` logger's handlers *inside* init, just before it logs the token notice, so a handler on
  `ray` itself would be dropped; instead `ray` propagates to a root-level file handler.
- `print` to stdout (Tune's configuration box, "View detailed results here", the
  TensorBoard hint): stdout is redirected to the log during `Tuner.fit`, so equisweep's own
  progress bar writes to the real stderr it captured before.
- Python warnings (RuntimeWarning from numerics in the driver, Ray deprecations): routed to
  logging by `logging.captureWarnings`, hence to the same file.

Worker processes' output stays in Ray's session logs (`log_to_driver=False`); the log file
names that folder. `-v` turns all of this off: Ray and Tune print as they normally do.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


MIRROR_EVERY_S = 30.0  # how often a remote store's copy of the log is refreshed


def log_path(store_uri: str, sweep: str) -> Path:
    """Where a run's log is written: `<store>/_logs/<sweep>-<UTC time>-<pid>.log` for a local
    store; for a remote store (s3://, gs://) a local file in the temp folder, since a log is
    appended line by line and object stores cannot append — `log_mirror` names its copy
    under the store's `_logs/`; the local file is removed once its last copy is there."""
    from equisweep.store.layout import log_file

    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = f"{sweep}-{stamp}-{os.getpid()}.log"
    where = log_file(store_uri, name)
    return where if isinstance(where, Path) else \
        Path(tempfile.gettempdir()) / "equisweep-logs" / name


def log_mirror(store_uri: str, path: Path) -> str | None:
    """The store URI of a remote store's copy of the log at `path` (None: a local store,
    where `path` already is under `<store>/_logs/`). Readers of the store find every
    run's log in one place, whatever machine ran the driver (a cluster's head node)."""
    from equisweep.store.layout import log_file

    where = log_file(store_uri, path.name)
    return None if isinstance(where, Path) else where


class _Mirror:
    """Copies the local log to its store URI every `every_s` seconds and once at the end:
    whole-object puts, so a reader never sees a torn copy, only a slightly old one."""

    def __init__(self, path: Path, uri: str, every_s: float):
        import threading

        from equisweep.store.location import resolve

        self.path, self.uri, self.every_s = path, uri, every_s
        self.fs, self.target = resolve(uri)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="equisweep-log-mirror",
                                        daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.copy()

    def copy(self) -> None:
        try:
            data = self.path.read_bytes()
            with self.fs.open_output_stream(self.target) as out:
                out.write(data)
        except Exception as exc:  # noqa: BLE001 - a log copy never stops a sweep
            self.error = " ".join(str(exc).split())[:200]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.every_s + 5)
        self.copy()  # the complete log, after its last line


class _LogStream:
    """The log file, never the reason a sweep fails: when its disk fills (the log lives in
    the store), lines are dropped instead of raising inside Tune or printing logging's
    error tracebacks on the console; the store's own writes report the full disk."""

    def __init__(self, f):
        self._f, self.error = f, None

    def write(self, text: str) -> int:
        if self.error is None:
            try:
                return self._f.write(text)
            except OSError as err:
                self.error = err
        return len(text)

    def flush(self) -> None:
        if self.error is None:
            try:
                self._f.flush()
            except OSError as err:
                self.error = err

    def close(self) -> None:
        try:
            self._f.close()
        except OSError as err:
            self.error = self.error or err

    def isatty(self) -> bool:
        return False


class QuietConsole:
    """Divert Ray/Tune output to a log file; `console` is the real stderr for our own lines.

    Use `with QuietConsole(path) as q:` around everything from `ray.init` to the end of the
    sweep, and `with q.tune_output():` around `Tuner.fit` (stdout prints).
    """

    def __init__(self, path: Path | None, mirror: str | None = None,
                 mirror_every_s: float | None = None):
        self.path = path
        self.mirror_uri = mirror if path is not None else None
        self._mirror_every_s = MIRROR_EVERY_S if mirror_every_s is None else mirror_every_s
        self._mirror: _Mirror | None = None
        self.console = sys.stderr
        self._stream = None
        self._handler = None
        self._saved: list = []

    # -- logging -------------------------------------------------------------------------
    def __enter__(self):
        if self.path is None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._stream = _LogStream(open(self.path, "a", buffering=1, encoding="utf-8"))
        self._handler = logging.StreamHandler(self._stream)
        self._handler.setFormatter(logging.Formatter(_FORMAT))
        self._handler.setLevel(logging.INFO)
        root = logging.getLogger()
        self._saved.append(("root_level", root.level))
        root.addHandler(self._handler)
        if root.level > logging.INFO or root.level == logging.NOTSET:
            root.setLevel(logging.INFO)
        logging.captureWarnings(True)
        self.reroute()
        if self.mirror_uri:
            self._mirror = _Mirror(self.path, self.mirror_uri, self._mirror_every_s)
            self._mirror.start()
        return self

    def reroute(self) -> None:
        """Send every `ray*` logger to the file: drop their console handlers, let them
        propagate. Called again after `ray.init` and after Tune is imported, since both
        (re)configure Ray's loggers."""
        if self._handler is None:
            return
        for name in ["ray", *list(logging.root.manager.loggerDict)]:
            if name != "ray" and not name.startswith("ray."):
                continue
            lg = logging.getLogger(name)
            for h in list(lg.handlers):
                if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                    lg.removeHandler(h)
            lg.propagate = True

    @contextlib.contextmanager
    def tune_output(self):
        """stdout → the log while Tune runs (its config box and hints are plain prints)."""
        if self._stream is None:
            yield
            return
        self.reroute()
        with contextlib.redirect_stdout(self._stream):
            yield
        self.reroute()

    def note(self, text: str) -> None:
        """A line for the log only (e.g. where Ray's own worker logs are)."""
        if self._stream is not None:
            self._stream.write(text.rstrip("\n") + "\n")

    def __exit__(self, *exc):
        if self._handler is None:
            return False
        root = logging.getLogger()
        root.removeHandler(self._handler)
        for what, value in self._saved:
            if what == "root_level":
                root.setLevel(value)
        logging.captureWarnings(False)
        self._stream.close()
        self._handler = self._stream = None
        if self._mirror is not None:
            self._mirror.stop()
            # A failing sweep says why in its own line (a store that cannot be written
            # cannot take the log's copy either); the local path was printed at the start.
            if self._mirror.error and exc[1] is None:
                print(f"equisweep: could not copy the log to {self.mirror_uri}: "
                      f"{self._mirror.error} (it stays at {self.path})", file=self.console)
            else:
                # The store's copy is the log now. A remote store's driver writes nothing
                # else outside the store, and a head node would otherwise keep one log per
                # run in its temp folder (the multi-host test checks the nodes' disks).
                with contextlib.suppress(OSError):
                    self.path.unlink()
                    if self.path.parent.name == "equisweep-logs":  # log_path's own folder
                        self.path.parent.rmdir()  # only when empty: another run's log stays
            self._mirror = None
        return False
