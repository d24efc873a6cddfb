"""The sweep as lines, for consoles that are not terminals: a Ray job's log (`submit
--follow`, the dashboard's Jobs page), CI logs, `run ... | tee`.

A progress bar redraws one line with carriage returns, which a log shows as one growing
smear; here each event is its own line, stamped with the time: a trial (or stack member)
started, finished with its final validation loss, diverged, failed with the cause, or
crashed and is being retried from its checkpoint — and every `every_s` seconds, and at the
end, one progress line with the bar's counts and best loss per variant. Fed by the same
`SweepTally` as the bar (sweep/progress.py), which must come first in the callback list.
"""

from __future__ import annotations

import time

from ray.tune import Callback

from equisweep.sweep.progress import _finite
from equisweep.sweep.stacking import members

EVERY_S = 60.0


class TrialLines(Callback):
    def __init__(self, tally, sweep: str, stream=None, every_s: float = EVERY_S,
                 clock=time.monotonic):
        self.tally, self.sweep, self.stream = tally, sweep, stream
        self.every_s, self.clock = every_s, clock
        self._said_end: set[str] = set()
        self._last_line = None

    def __getstate__(self):  # pickled into Tune's experiment state; streams are not
        state = dict(self.__dict__)
        state["stream"] = None
        state["clock"] = None
        return state

    # -- output ---------------------------------------------------------------------------
    def say(self, text: str) -> None:
        if self.stream is None:
            return
        self.stream.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
        self.stream.flush()

    def progress_line(self) -> None:
        t = self.tally
        ended = t.done + t.failed + t.diverged
        total = f"/{t.total}" if t.total else ""
        self.say(f"sweep {self.sweep}: {ended}{total} trials ended | {t.postfix()}")
        self._last_line = self.clock() if self.clock else None

    def _maybe_progress(self) -> None:
        if self.clock is None:
            return
        now = self.clock()
        if self._last_line is None:
            self._last_line = now
        elif now - self._last_line >= self.every_s:
            self.progress_line()

    # -- helpers ---------------------------------------------------------------------------
    @staticmethod
    def _label(trial, member) -> str:
        m = members(trial.config)[member or 0]
        return str(m.get("label") or m.get("key") or trial.trial_id)

    def _members(self, trial) -> list[int | None]:
        return list(range(len(trial.config["stack"]))) if "stack" in trial.config else [None]

    def _ended(self, trial, member, result: dict | None, failed: bool, error: str = "") -> None:
        uid = self.tally._uid(trial, member)
        if uid in self._said_end:
            return
        self._said_end.add(uid)
        result = result or {}
        node = result.get("hostname") or result.get("node_ip")
        where = f" on {node}" if node else ""
        status = "failed" if failed else (result.get("status") or "finished")
        if status not in ("finished", "diverged", "failed"):
            status = "finished"
        text = f"{status} {self._label(trial, member)}{where}"
        if status == "finished":
            val, se = _finite(result.get("val_loss")), _finite(result.get("val_loss_se"))
            if val is not None:
                text += f": val {val:.4g}" + (f" ± {se:.2g}" if se is not None else "")
            if result.get("step") is not None:
                text += f" at step {int(result['step'])}"
        else:
            cause = error or str(result.get("error") or "")
            if cause:
                text += f": {' '.join(cause.split())[:300]}"
        self.say(text)

    # -- Tune events -----------------------------------------------------------------------
    def on_trial_start(self, iteration, trials, trial, **info):
        for member in self._members(trial):
            if self.tally._uid(trial, member) not in self._said_end:
                self.say(f"started {self._label(trial, member)}")

    def on_trial_result(self, iteration, trials, trial, result, **info):
        member = result.get("member")
        if member is not None and result.get("status") in ("finished", "diverged", "failed"):
            self._ended(trial, member, result, failed=False)
        self._maybe_progress()

    def on_step_end(self, iteration, trials, **info):
        self._maybe_progress()

    def on_trial_recover(self, iteration, trials, trial, **info):
        from equisweep.sweep.callback import _error_text

        last = self._last(trial, None)
        node = last.get("hostname") or last.get("node_ip")
        where = f" on {node}" if node else ""
        self.say(f"crashed {self._label(trial, None)}{where} (attempt "
                 f"{int(trial.num_failures)}): {_error_text(trial)}; retrying from its last "
                 "checkpoint")

    def on_trial_complete(self, iteration, trials, trial, **info):
        for member in self._members(trial):
            self._ended(trial, member, self._last(trial, member), failed=False)

    def on_trial_error(self, iteration, trials, trial, **info):
        from equisweep.sweep.callback import _error_text

        error = _error_text(trial)
        for member in self._members(trial):
            self._ended(trial, member, self._last(trial, member), failed=True, error=error)

    def on_experiment_end(self, trials, **info):
        self.progress_line()

    def _last(self, trial, member) -> dict:
        return getattr(self.tally, "_last", {}).get(self.tally._uid(trial, member), {})

