"""Driver-side Tune callback: streams every reported row into the Parquet results store.

Only the driver writes the store. Rows are buffered by the store writer (flushed by count
and time); they are also flushed whenever Tune is about to register a checkpoint, so every
row up to a trial's restore point is durable before that point can be restored from. Rows
Tune re-reports after a restore are deduplicated by the store on read.

A stack (`sweep.stacking`) is one Tune trial whose rows carry `member`: each member is
filed as its own trial (key, attempt, running/finished/diverged/failed row). A member that
ends while its stack goes on gets its terminal row at once; rows a retried stack re-reports
for a member that already ended are dropped, so each member ends exactly once.
"""

from __future__ import annotations

import functools
import math
import os
from datetime import datetime, timezone
from pathlib import Path

from ray.tune import Callback

from equisweep.errors import UserError
from equisweep.store.schema import REPORTED_METRICS, trial_columns
from equisweep.sweep.stacking import members

_TERMINAL = {"finished", "diverged", "failed"}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _num(v):
    if v is None:
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


class StoreUnwritable(UserError):
    """The results store refused a write (a full disk, a read-only remount, an unreachable
    S3 server): the sweep stops at once with one line, since every later row would be lost
    too. What is stored stays whole (fragments are written atomically); the rows still
    buffered are reported again by the trials `equisweep resume` continues."""

    def __init__(self, sweep: str, store_uri: str, err: OSError):
        reason = os.strerror(err.errno) if isinstance(err.errno, int) and err.errno else \
            (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        super().__init__(f"sweep {sweep}: cannot write the results store {store_uri} "
                         f"({reason}); the rows already stored are kept; once it can be "
                         f"written again, continue with: equisweep resume {sweep} "
                         f"--store {store_uri}")


def _guarded(hook):
    """Run a callback hook; a store write that fails stops the sweep (`StoreUnwritable`).
    Tune lets a callback's exception end `fit()` after stopping the trials, and calls the
    remaining hooks of its cleanup, which then write nothing."""

    @functools.wraps(hook)
    def run(self, *args, **kwargs):
        if self.__dict__.get("failed") is not None:
            return None
        try:
            return hook(self, *args, **kwargs)
        except OSError as err:
            self.failed = err
            raise StoreUnwritable(self.sweep, self.store_uri, err) from None

    return run


class StoreCallback(Callback):
    # `progress` is accepted for experiment states pickled before the sweep bar moved to
    # sweep/progress.py (the one bar); it draws nothing.
    def __init__(self, store_uri: str, sweep: str, total: int = 0, progress: bool = False,
                 attempts: dict[str, int] | None = None):
        self.store_uri = store_uri
        # Attempts the store already holds per key (earlier runs): a continued trial's rows
        # are later attempts, so the store's "highest attempt wins" picks them.
        self.attempts = dict(attempts or {})
        self.sweep = sweep
        self.total = total
        self._writer = None
        self._started: dict[str, datetime] = {}
        self._last: dict[str, dict] = {}
        self._member_last: dict[tuple[str, int], dict] = {}  # a stack member's last result
        self._ended: dict[str, set[int]] = {}  # trial id -> stack members that ended

    # The callback is pickled into Tune's experiment state; open handles are not.
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_writer"] = None
        state.pop("failed", None)
        return state

    @property
    def writer(self):
        if self._writer is None:
            from equisweep.store import open_store

            self._writer = open_store(self.store_uri).writer(self.sweep)
        return self._writer

    def _attempt(self, trial, member: int = 0, crashed: bool = False) -> int:
        """The attempt a row belongs to. Tune counts a failure before it calls back about
        it, so the attempt that just crashed is the count itself, not the count + 1."""
        key = members(trial.config)[member]["key"]
        return self.attempts.get(key, 0) + int(trial.num_failures) + (0 if crashed else 1)

    def _open(self, trial) -> list[int]:
        """The members of `trial` (0 for a lone trial) that have not ended."""
        ended = self._ended.get(trial.trial_id, set())
        return [m for m in range(len(members(trial.config))) if m not in ended]

    def _trial_row(self, trial, status: str, error: str = "", member: int = 0,
                   crashed: bool = False) -> dict:
        payload = members(trial.config)[member]
        cfg = payload["trial"]
        key = payload["key"]
        last = self._last.get(trial.trial_id, {})
        wsd = payload.get("wsd") or {}
        return {
            **trial_columns(key, cfg, n_params=payload["n_params"],
                            flops_per_step=payload["flops_per_step"],
                            equivariant=payload.get("equivariant")),
            "sweep": self.sweep,
            "cell_key": payload.get("cell_key"),
            "trunk": wsd.get("trunk"),
            "fork_step": wsd.get("fork_step"),
            "status": status,
            "attempt": self._attempt(trial, member, crashed=crashed),
            "node": _node(last),
            "error": error,
            "started_at": self._started.get(trial.trial_id, _now()),
            "ended_at": _now() if status in _TERMINAL else None,
        }

    @_guarded
    def on_trial_start(self, iteration, trials, trial, **info):
        self._started[trial.trial_id] = _now()
        for m in self._open(trial):
            self.writer.add_trial(self._trial_row(trial, "running", member=m))
        self.writer.flush()

    @_guarded
    def on_trial_result(self, iteration, trials, trial, result, **info):
        self._last[trial.trial_id] = result
        attempt = (trial.trial_id, int(trial.num_failures))
        seen = self.__dict__.setdefault("_placed", set())  # absent in older pickles
        if attempt not in seen and (result.get("hostname") or result.get("node_ip")):
            # The attempt's first report says where it runs: its `running` row again, with
            # the node (at start Tune has not placed it yet).
            seen.add(attempt)
            for m in self._open(trial):
                self.writer.add_trial(self._trial_row(trial, "running", member=m))
        member = result.get("member")
        m = 0 if member is None else int(member)
        if member is not None:
            if m not in self._open(trial):
                return  # re-reported by a retried stack after this member ended
            self._member_last[(trial.trial_id, m)] = result
        if "step" in result:
            row = {"sweep": self.sweep, "key": members(trial.config)[m]["key"],
                   "attempt": self._attempt(trial, m)}
            for name in REPORTED_METRICS:
                row[name] = _num(result.get(name))
            row["step"] = int(result["step"])
            if row["train_loss"] is None and result.get("status") == "diverged":
                row["train_loss"] = math.nan
            self.writer.add_metrics([row])
        if member is not None and result.get("status") in _TERMINAL:
            # A stack member ended while its stack goes on: its trial row now.
            self._ended.setdefault(trial.trial_id, set()).add(m)
            self.writer.add_trial(self._trial_row(trial, result["status"],
                                                  str(result.get("error") or ""), member=m))
            self.writer.flush()

    @_guarded
    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info):
        self.writer.flush()

    @_guarded
    def on_trial_recover(self, iteration, trials, trial, **info):
        # The attempt that just crashed, with its cause: `retrying` (not `failed`) until
        # Tune starts the next attempt from the last checkpoint, which may wait for a CPU.
        for m in self._open(trial):
            self.writer.add_trial(self._trial_row(trial, "retrying", _error_text(trial), m,
                                                  crashed=True))
        self.writer.flush()
        self._last.pop(trial.trial_id, None)  # the next attempt's node is not yet known

    @_guarded
    def on_trial_complete(self, iteration, trials, trial, **info):
        stacked = "stack" in trial.config
        for m in self._open(trial):
            last = self._member_last.get((trial.trial_id, m), {}) if stacked \
                else self._last.get(trial.trial_id, {})
            status = last.get("status") if last.get("status") in _TERMINAL else "finished"
            self.writer.add_trial(self._trial_row(trial, status, str(last.get("error") or ""),
                                                  m))
        self.writer.flush()

    @_guarded
    def on_trial_error(self, iteration, trials, trial, **info):
        for m in self._open(trial):
            self.writer.add_trial(self._trial_row(trial, "failed", _error_text(trial), m,
                                                  crashed=True))
        self.writer.flush()

    def on_experiment_end(self, trials, **info):
        if self.__dict__.get("failed") is not None:
            self._writer = None  # its rows cannot be written; the resumed trials repeat them
            return
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except OSError as err:
                self.failed = err
                raise StoreUnwritable(self.sweep, self.store_uri, err) from None


def _node(result: dict) -> str:
    """Where an attempt ran: the host name, and the Ray node id (host names repeat across
    a cluster's containers; the id is what `ray list nodes` and the dashboard show)."""
    host = result.get("hostname") or result.get("node_ip")
    if not host:
        return ""  # not placed yet: its first report will say
    node_id = result.get("node_id")
    return f"{host} ({node_id[:12]})" if isinstance(node_id, str) and node_id else str(host)


def _error_text(trial) -> str:
    """The last line of the trial's traceback: enough to tell a crash from an OOM.

    Tune writes it to the trial's local folder before it calls back, and copies it to the
    experiment's storage later: read the local copy first (the storage one, on an object
    store, is not there yet at that moment)."""
    err = None
    local = getattr(trial, "error_file", None)
    if local:
        try:
            err = Path(local).read_text(errors="replace")
        except OSError:
            err = None
    if not err:
        try:
            err = trial.get_error()
        except Exception:  # error file may be on unreachable storage
            err = None
    text = str(err) if err else "trial process failed"
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:500] if lines else "trial process failed"
