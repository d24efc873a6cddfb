"""`training.stack`: whether trials that differ only in their hyperparameters train as one
stack (`equisweep.trainer.stack`), one process and one forward/backward for K of them.

`off` trains every trial alone (the default); `auto` stacks each cell's trials up to a
memory estimate (`equisweep.sweep.stacking`); a positive integer N stacks them N at a time.
The setting is how the sweep runs, not what a trial is: it is kept out of the trial dict,
so it never enters a cell's identity or a trial's key, and changing it between a run and
its resubmission reruns nothing.
"""

from __future__ import annotations

from typing import Any

from equisweep.spec.check import Check, is_int, show

STACK_MODES = ("auto", "off")
STACK_DEFAULT = "off"


def parse_stack(c: Check, training: Any) -> str | int | Any:
    """The `training.stack` value of a `training:` mapping: "auto", "off" or an int >= 1."""
    if not isinstance(training, dict) or "stack" not in training:
        return STACK_DEFAULT
    v = training["stack"]
    if isinstance(v, str) and v in STACK_MODES:
        return v
    if is_int(v) and v >= 1:
        return int(v)
    return c.add(
        "training.stack",
        f"must be auto, off or a positive integer (trials per stack), got {show(v)}",
    )
