"""The sweep's one progress bar and its Ray metrics: trials by state, best loss per variant.

Both are Tune callbacks on the driver, fed by the same `SweepTally`: the bar shows
running/done/failed and the best final validation loss (or skill, when trials report it) of
each variant so far; `RayMetrics` exports the same numbers with `ray.util.metrics`, so a
cluster whose Prometheus scrapes Ray shows them in Grafana / the dashboard's Metrics view.
A stack's members (`sweep.stacking`) count as the trials they are: each starts, runs, ends
and spends its FLOPs on its own, though Tune sees one trial.
"""

from __future__ import annotations

import json
import math

from ray.tune import Callback

from equisweep.analysis.data import variant_name
from equisweep.sweep.stacking import members


def _finite(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def pace_group(cfg: dict) -> str:
    """The ETA's unit of pace: one variant at one model size. FLOPs per second of wall
    differ ~50x between families and several-fold between the sizes of one family on a CPU
    (per-step overheads dominate small models), so a pace pooled over sizes is wrong whenever
    the sizes left differ from the sizes done. A config without a size is its variant."""
    v = variant_name(cfg.get("family", "?"), bool(cfg.get("augment", False)))
    size = cfg.get("size")
    return f"{v} {json.dumps(size, sort_keys=True)}" if size else v


def _group_variant(group: str) -> str:
    """The variant of a `pace_group` (variant names hold no space)."""
    return group.split(" ", 1)[0]


class SweepTally:
    """Counts of trials by state, FLOPs spent and the best result per variant, from Tune's
    callback events. `total` is the number of trials this run plans."""

    def __init__(self, total: int, planned_by_group: dict[str, float] | None = None):
        self.total = total
        self.planned_by_group = dict(planned_by_group or {})  # pace group -> planned FLOPs
        self.rate: dict[str, tuple[float, float]] = {}  # uid -> (FLOPs, wall s) of its rows
        self._variant_of: dict[str, str] = {}
        self.running: set[str] = set()
        self.done = 0
        self.failed = 0
        self.diverged = 0
        self.flops: dict[str, float] = {}
        self._ended: set[str] = set()  # stack members (id "trial/member") that ended
        self._shared: dict[str, float] = {}  # WSD branches: FLOPs of the trunk rows they repeat
        self._last: dict[str, dict] = {}
        self.best: dict[str, tuple[str, float]] = {}  # variant -> ("loss"|"skill", value)

    @staticmethod
    def variant(trial, member: int = 0) -> str:
        cfg = members(trial.config)[member].get("trial", {})
        return variant_name(cfg.get("family", "?"), bool(cfg.get("augment", False)))

    @staticmethod
    def _uid(trial, member: int | None) -> str:
        return trial.trial_id if member is None else f"{trial.trial_id}/{member}"

    def _units(self, trial) -> list[tuple[str, int | None]]:
        """(id, member) of the trials `trial` stands for that have not ended."""
        ended = self.__dict__.setdefault("_ended", set())  # absent in older pickles
        if "stack" not in trial.config:
            return [(trial.trial_id, None)]
        return [(u, m) for m in range(len(trial.config["stack"]))
                if (u := self._uid(trial, m)) not in ended]

    def start(self, trial) -> None:
        self.running.update(u for u, _ in self._units(trial))

    def result(self, trial, result: dict) -> int:
        """Count a result; returns how many trials it ended (a stack member that ended)."""
        member = result.get("member")
        uid = self._uid(trial, member)
        if uid in self.__dict__.setdefault("_ended", set()):
            return 0
        self._last[uid] = result
        f = _finite(result.get("flops"))
        if f is not None:
            fork = (members(trial.config)[member or 0].get("wsd") or {}).get("fork_step")
            shared = self.__dict__.setdefault("_shared", {})  # absent in older pickles
            if _finite(result.get("fork_flops")) is not None:
                # The trainable read the trunk's FLOPs at the fork from the fork checkpoint:
                # exact, where the re-reported rows only bound it from below.
                shared[uid] = float(result["fork_flops"])
            if fork is not None and int(result.get("step") or 0) <= fork:
                # A WSD branch first re-reports its trunk's rows: spent by the trunk, once.
                shared[uid] = max(f, shared.get(uid, 0.0))
                return 0
            wall = _finite(result.get("wall_s"))
            if wall is not None and wall > 0:  # the trial's own pace, trunk part included
                self.__dict__.setdefault("rate", {})[uid] = (f, wall)
            self.__dict__.setdefault("_variant_of", {})[uid] = pace_group(
                members(trial.config)[member or 0].get("trial", {}))
            f -= shared.get(uid, 0.0)
            self.flops[uid] = max(f, self.flops.get(uid, 0.0))
        if member is not None and result.get("status") in ("finished", "diverged", "failed"):
            self._end(trial, uid, member, failed=False)
            return 1
        return 0

    def end(self, trial, failed: bool) -> int:
        """The Tune trial ended: every trial it stands for that is still open ends now."""
        units = self._units(trial)
        for uid, member in units:
            self._end(trial, uid, member, failed)
        return len(units)

    def _end(self, trial, uid: str, member: int | None, failed: bool) -> None:
        self.running.discard(uid)
        if member is not None:
            self._ended.add(uid)
        last = self._last.get(uid, {})
        if failed or last.get("status") == "failed":
            self.failed += 1
            return
        if last.get("status") == "diverged":
            self.diverged += 1
            return
        self.done += 1
        skill, loss = _finite(last.get("skill")), _finite(last.get("val_loss"))
        v = self.variant(trial, member or 0)
        have = self.best.get(v)
        if skill is not None:
            if have is None or have[0] != "skill" or skill > have[1]:
                self.best[v] = ("skill", skill)
        elif loss is not None and (have is None or (have[0] == "loss" and loss < have[1])):
            self.best[v] = ("loss", loss)

    def retry(self, trial) -> None:
        """An attempt crashed and Tune retries it (each member of a stack with it)."""
        self.retried = self.__dict__.get("retried", 0) + 1
        for uid, _ in self._units(trial):
            self.running.discard(uid)

    @property
    def spent_flops(self) -> float:
        return float(sum(self.flops.values()))

    def eta_s(self) -> float | None:
        """Seconds left: the planned FLOPs not yet spent of each pace group (a variant at one
        size, `pace_group`; `planned_by_group` is keyed by it), at the FLOPs per second of
        wall its own trials have reached, spread over the trials running at once. A group
        none of whose trials has reported yet goes at its variant's rate, else at the pooled
        rate of every trial that has, until its own is measured; None before any trial has
        reported."""
        # a tally pickled by an older driver (resume) planned by variant: its keys are
        # variants, which the fallback below reads as groups without a size
        planned = (self.__dict__.get("planned_by_group")
                   or self.__dict__.get("planned_by_variant") or {})
        if not planned:
            return None
        spent: dict[str, float] = {}
        pace: dict[str, list[float]] = {}
        variant_of = self.__dict__.get("_variant_of", {})
        for uid, f in self.flops.items():
            g = variant_of.get(uid)
            spent[g] = spent.get(g, 0.0) + f
        pooled = [0.0, 0.0]
        for uid, (f, wall) in self.__dict__.get("rate", {}).items():
            g = variant_of.get(uid) or "?"
            for key in {g, _group_variant(g)}:  # the group's, and its variant's
                p = pace.setdefault(key, [0.0, 0.0])
                p[0], p[1] = p[0] + f, p[1] + wall
            pooled[0], pooled[1] = pooled[0] + f, pooled[1] + wall
        if pooled[0] <= 0 or pooled[1] <= 0:
            return None
        seconds = 0.0
        for g, flops in planned.items():
            left = max(0.0, flops - spent.get(g, 0.0))
            if left <= 0:
                continue
            for key in (g, _group_variant(g)):
                f, wall = pace.get(key, (0.0, 0.0))
                if f > 0 and wall > 0:
                    break
            else:
                f, wall = pooled
            seconds += left / (f / wall)
        return seconds / max(1, len(self.running))

    def postfix(self) -> str:
        parts = [f"run {len(self.running)}", f"done {self.done}", f"failed {self.failed}"]
        if self.diverged:
            parts.append(f"diverged {self.diverged}")
        for v in sorted(self.best):
            kind, value = self.best[v]
            parts.append(f"{v} {'skill' if kind == 'skill' else 'val'} {value:.4g}")
        return " | ".join(parts)


class ProgressBar(Callback):
    """One tqdm bar for the whole sweep on the console stream (the real stderr)."""

    def __init__(self, tally: SweepTally, sweep: str, stream=None, enabled: bool = True):
        self.tally, self.sweep, self.stream, self.enabled = tally, sweep, stream, enabled
        self._bar = None

    def __getstate__(self):  # pickled into Tune's experiment state; open bars are not
        state = dict(self.__dict__)
        state["_bar"] = state["stream"] = None
        return state

    def _refresh(self, advance: int = 0) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.tally.total or None, desc=f"sweep {self.sweep}",
                             unit="trial", file=self.stream, dynamic_ncols=True)
        # Postfix first, then the count: one redraw that shows both up to date.
        self._bar.set_postfix_str(self.tally.postfix(), refresh=not advance)
        if advance:
            self._bar.update(advance)

    def on_trial_start(self, iteration, trials, trial, **info):
        self.tally.start(trial)
        self._refresh()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        ended = self.tally.result(trial, result)
        if ended:
            self._refresh(ended)

    def on_trial_recover(self, iteration, trials, trial, **info):
        self.tally.retry(trial)
        self._refresh()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._refresh(self.tally.end(trial, failed=False))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._refresh(self.tally.end(trial, failed=True))

    def on_experiment_end(self, trials, **info):
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class RayMetrics(Callback):
    """Export the tally with `ray.util.metrics` (gauges, tagged by sweep).

    Metric names (Prometheus adds Ray's `ray_` prefix): `equisweep_trials{sweep,state}`,
    `equisweep_flops_spent{sweep}`, `equisweep_flops_planned{sweep}`,
    `equisweep_best_val_loss{sweep,variant}` and `equisweep_best_skill{sweep,variant}`.
    Must run after `ProgressBar` in the callback list: that one updates the tally.
    """

    STATES = ("pending", "running", "finished", "failed", "diverged")

    def __init__(self, tally: SweepTally, sweep: str, planned_flops: float):
        self.tally, self.sweep, self.planned_flops = tally, sweep, float(planned_flops)
        self._gauges = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_gauges"] = None
        return state

    def _g(self):
        if self._gauges is None:
            from ray.util.metrics import Gauge

            self._gauges = {
                "trials": Gauge("equisweep_trials", "trials of the sweep by state",
                                tag_keys=("sweep", "state")),
                "spent": Gauge("equisweep_flops_spent", "training FLOPs spent by this run",
                               tag_keys=("sweep",)),
                "planned": Gauge("equisweep_flops_planned", "training FLOPs this run plans",
                                 tag_keys=("sweep",)),
                "loss": Gauge("equisweep_best_val_loss",
                              "best final validation loss per variant so far",
                              tag_keys=("sweep", "variant")),
                "skill": Gauge("equisweep_best_skill", "best skill per variant so far",
                               tag_keys=("sweep", "variant")),
            }
        return self._gauges

    def values(self) -> dict:
        t = self.tally
        finished_like = t.done + t.failed + t.diverged + len(t.running)
        return {
            "trials": {"pending": max(0, t.total - finished_like), "running": len(t.running),
                       "finished": t.done, "failed": t.failed, "diverged": t.diverged},
            "spent": t.spent_flops, "planned": self.planned_flops,
            "best": dict(t.best),
        }

    def publish(self) -> None:
        g, v = self._g(), self.values()
        for state, n in v["trials"].items():
            g["trials"].set(n, tags={"sweep": self.sweep, "state": state})
        g["spent"].set(v["spent"], tags={"sweep": self.sweep})
        g["planned"].set(v["planned"], tags={"sweep": self.sweep})
        for variant, (kind, value) in v["best"].items():
            g["loss" if kind == "loss" else "skill"].set(
                value, tags={"sweep": self.sweep, "variant": variant})

    def on_trial_start(self, iteration, trials, trial, **info):
        self.publish()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.publish()

    def on_trial_error(self, iteration, trials, trial, **info):
        self.publish()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        self.publish()
