"""Ctrl-C (SIGINT) and SIGTERM end a sweep's driver cleanly, never as a success.

Tune's own SIGINT handler stops the experiment and returns from `fit()` as if it had
ended, so the driver printed a success summary and exited 0 with most trials unfinished.
Here, from the moment a driver holds its sweep's lease:

- SIGTERM is treated like Ctrl-C (a KeyboardInterrupt), in every phase (data generation,
  planning, the sweep itself);
- while Tune runs, the first SIGINT or SIGTERM asks Tune to stop (through SIGUSR1, Tune's
  own stop signal: it stops its trials and saves its state), a second one interrupts at once;
- either way the command ends with one line saying how to continue, and the exit code
  128 + the signal's number (130 for SIGINT, 143 for SIGTERM). The heartbeat and the lease
  are closed on the way out, so `status` shows the unfinished trials as `interrupted`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

from equisweep.errors import UserError


class Interrupted(UserError):
    """The sweep was stopped by a signal; exit code 128 + signal number."""

    def __init__(self, sweep: str, store_uri: str, signum: int):
        name = signal.Signals(signum).name
        super().__init__(f"sweep {sweep} interrupted by {name}: finished trials and rows are "
                         f"in the store; continue with: equisweep resume {sweep} "
                         f"--store {store_uri}")
        self.exit_code = 128 + signum


class Stop:
    """`with Stop(sweep, store).whole():` around the driver's work after the lease;
    `with stop.during_fit():` around `tuner.fit()`, then `stop.check()`."""

    def __init__(self, sweep: str, store_uri: str):
        self.sweep, self.store_uri = sweep, store_uri
        self.signum: int | None = None

    def _interrupt(self, signum, frame):
        self.signum = self.signum or signum
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def whole(self):
        if threading.current_thread() is not threading.main_thread():
            yield self  # signals reach the main thread only; nothing to install here
            return
        previous = signal.signal(signal.SIGTERM, self._interrupt)
        try:
            yield self
        except KeyboardInterrupt:
            raise Interrupted(self.sweep, self.store_uri, self.signum or signal.SIGINT) \
                from None
        finally:
            signal.signal(signal.SIGTERM, previous)

    def _ask_tune_to_stop(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt  # a second signal: stop waiting for Tune
        self.signum = signum
        tune_handler = signal.getsignal(signal.SIGUSR1)
        if tune_handler in (signal.SIG_DFL, signal.SIG_IGN, None):
            raise KeyboardInterrupt  # Tune's loop is not running (yet, or any more)
        os.kill(os.getpid(), signal.SIGUSR1)

    @contextlib.contextmanager
    def during_fit(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        saved_env = os.environ.get("TUNE_DISABLE_SIGINT_HANDLER")
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"  # ours decides, then asks Tune
        previous = {s: signal.signal(s, self._ask_tune_to_stop)
                    for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            if saved_env is None:
                os.environ.pop("TUNE_DISABLE_SIGINT_HANDLER", None)
            else:
                os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = saved_env

    def check(self) -> None:
        """After `fit()` returned: raise Interrupted if it returned because of a signal."""
        if self.signum is not None:
            raise Interrupted(self.sweep, self.store_uri, self.signum)
