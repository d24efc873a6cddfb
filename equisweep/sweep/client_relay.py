"""The sweep's console under Ray Client (`--address ray://HOST:10001`).

In client mode `Tuner.fit` runs the whole experiment in an actor on the cluster (Ray Tune's
`Tuner` keeps a `_remote_tuner` when `ray.util.client` is connected), callbacks included: the
tally they keep, the bar they would draw and the trial lines they would write live in that
actor on the head, and the tally this process holds never moves. So a ray:// run showed no
bar, no trial line, and a heartbeat with no FLOPs and no ETA (issue 20).

A `Board` actor carries them back. On the cluster, `Post` (last in the callback list, after
the callbacks that update the tally) posts the tally's counts and the trial lines written
since its last post, at most every `every_s` seconds and always when a trial ends. Here,
`Mirror` polls the board once a second into this process's own tally, bar and console, so
the user sees what a local run shows and the heartbeat reads the real counts.
"""

from __future__ import annotations

import threading
import time

import ray
from ray.tune import Callback

# What the local side reads of the tally (the bar's counts and postfix, the ETA, the
# heartbeat). The per-trial last results stay on the cluster: they are large and only the
# remote callbacks need them.
SHARED_FIELDS = ("total", "planned_by_group", "rate", "_variant_of", "running", "done",
                 "failed", "diverged", "flops", "best", "retried")


def in_client_mode() -> bool:
    return bool(ray.util.client.ray.is_connected())


@ray.remote(num_cpus=0)
class Board:
    """The latest tally and the lines not yet taken, between the cluster and the client."""

    def __init__(self):
        self.state: dict | None = None
        self.lines: list[str] = []

    def post(self, state: dict | None, lines: list[str]) -> None:
        if state is not None:
            self.state = state
        self.lines.extend(lines)

    def take(self) -> tuple[dict | None, list[str]]:
        lines, self.lines = self.lines, []
        return self.state, lines


class _Lines:
    """A stream for `TrialLines` on the cluster: it keeps what is written for the next post."""

    def __init__(self):
        self.pending: list[str] = []

    def write(self, text: str) -> None:
        self.pending.append(text)

    def flush(self) -> None:
        pass

    def drain(self) -> list[str]:
        out, self.pending = self.pending, []
        return out


class Post(Callback):
    """On the cluster: post the tally and the trial lines to the board."""

    def __init__(self, board, tally, lines=None, every_s: float = 0.5):
        self.board, self.tally, self.every_s = board, tally, every_s
        self.lines = lines  # the TrialLines callback whose output travels, if any
        self._sent = 0.0

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        # Runs in the actor on the cluster: from here on TrialLines writes for the board,
        # with the clock its pickling dropped (its minute progress line needs one).
        if self.lines is not None:
            self.lines.stream = _Lines()
            self.lines.clock = time.monotonic

    def _post(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._sent < self.every_s:
            return
        self._sent = now
        stream = getattr(self.lines, "stream", None)
        text = stream.drain() if isinstance(stream, _Lines) else []
        state = {k: v for k, v in vars(self.tally).items() if k in SHARED_FIELDS}
        self.board.post.remote(state, text)

    def on_trial_start(self, iteration, trials, trial, **info):
        self._post(force=True)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._post()

    def on_step_end(self, iteration, trials, **info):
        self._post()  # a throttled post catches up here

    def on_trial_recover(self, iteration, trials, trial, **info):
        self._post(force=True)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._post(force=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._post(force=True)

    def on_experiment_end(self, trials, **info):
        self._post(force=True)


class Mirror:
    """Here: poll the board into the local tally, advance the bar, print the lines."""

    def __init__(self, board, tally, bar=None, stream=None, every_s: float = 1.0):
        self.board, self.tally, self.bar, self.stream = board, tally, bar, stream
        self.every_s = every_s
        self._shown = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="equisweep-mirror",
                                        daemon=True)

    def start(self) -> Mirror:
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.poll()
            except Exception:  # a slow or restarting cluster: the next poll catches up
                continue

    def poll(self, timeout: float = 30.0) -> None:
        state, lines = ray.get(self.board.take.remote(), timeout=timeout)
        if state is not None:
            self.tally.__dict__.update(state)
        for text in lines:
            if self.stream is not None:
                self.stream.write(text)
        if self.stream is not None and lines:
            self.stream.flush()
        ended = self.tally.done + self.tally.failed + self.tally.diverged
        if self.bar is not None:
            self.bar._refresh(max(0, ended - self._shown))
        self._shown = max(self._shown, ended)

    def stop(self) -> None:
        """After `fit`: one last poll (the experiment's final post), then close the bar."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.every_s + 35)
        try:
            self.poll()
        except Exception:  # the cluster went away at the end: what was shown stays
            pass
        if self.bar is not None:
            self.bar.on_experiment_end([])
