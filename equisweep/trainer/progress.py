"""A trial's running counters and the metric rows built from them.

`Progress` is everything about a run that is not model or optimizer state: cumulative
training FLOPs and wall time, evaluation FLOPs (forward passes, never in `flops`), the train
loss averaged since the last row, the last gradient norm, the throughput window, and (for a
WSD trunk) the rows emitted so far. It goes into every checkpoint and comes back on restore.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from equisweep.store.schema import REPORTED_METRICS


@dataclass
class Progress:
    step: int = 0
    flops: float = 0.0
    wall: float = 0.0
    eval_flops: float = 0.0
    loss_sum: float = 0.0
    loss_n: int = 0
    history: list = field(default_factory=list)
    grad_norm: float = math.nan
    window_t0: float = field(default_factory=time.perf_counter)
    window_samples: int = 0
    window_flops: float = 0.0

    @classmethod
    def restore(cls, state: dict) -> Progress:
        return cls(step=int(state["step"]), flops=float(state["flops"]),
                   wall=float(state["wall_s"]), eval_flops=float(state.get("eval_flops", 0.0)),
                   loss_sum=float(state["loss_sum"]), loss_n=int(state["loss_n"]),
                   history=list(state.get("rows") or []))

    def state(self, done: int, keep_rows: bool) -> dict:
        """The counters' part of a checkpoint after `done` steps."""
        return {"step": done, "flops": self.flops, "wall_s": self.wall,
                "loss_sum": self.loss_sum, "loss_n": self.loss_n,
                "rows": [dict(r) for r in self.history] if keep_rows else [],
                "eval_flops": self.eval_flops}

    def add_step(self, seconds: float, flops: float, samples: int, loss: float,
                 grad_norm: float) -> None:
        self.wall += seconds
        self.flops += flops
        self.window_samples += samples
        self.window_flops += flops
        self.loss_sum += loss
        self.loss_n += 1
        self.grad_norm = grad_norm

    def row(self, done: int, batch_size: int, train_size: int, lr: float) -> dict:
        """The row after `done` steps: train loss averaged since the last row, throughput
        over the same window (both windows then restart)."""
        row = metric_row(done, batch_size, train_size, self.flops, self.wall,
                         self.loss_sum / max(self.loss_n, 1), self.grad_norm, lr)
        elapsed = time.perf_counter() - self.window_t0
        row["samples_per_s"] = self.window_samples / max(elapsed, 1e-9)
        row["flops_per_s"] = self.window_flops / max(elapsed, 1e-9)
        self.loss_sum, self.loss_n = 0.0, 0
        return row

    def restart_window(self) -> None:
        self.window_t0, self.window_samples, self.window_flops = time.perf_counter(), 0, 0.0


def metric_row(step, batch_size, train_size, flops, wall, train_loss, grad_norm, lr) -> dict:
    """A metric row: every column the store's schema reports (unmeasured ones None)."""
    samples = step * batch_size
    row = dict.fromkeys(REPORTED_METRICS)
    row.update(
        step=step,
        samples=samples,
        epochs=samples / max(train_size, 1),
        flops=float(flops),
        wall_s=float(wall),
        train_loss=float(train_loss),
        lr=float(lr),
        grad_norm=None if grad_norm is None else float(grad_norm),
    )
    return row


def plain(row: dict) -> dict:
    """A row as plain Python values: checkpoints load with weights_only, which refuses numpy
    scalars."""
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
