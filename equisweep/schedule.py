"""Learning-rate schedules, and the arithmetic of warmup–stable–decay (WSD) forks.

The one definition of "which multiplier at which step" and of "where a WSD length forks from
its trunk": the trainer (train.py) and the sweep planner (spec/) both read it, so a branch
always forks exactly where its own standalone schedule leaves the constant phase.

WSD (Hägele et al. 2024): linear warmup, a constant learning rate, then a decay to zero over
the last `cooldown` fraction of the run, `linear` or `sqrt` (1 − sqrt of progress). Two WSD
runs of lengths S < T with the same warmup step count have identical schedules up to S's fork
step, so S can be trained by branching off T's run there. For that reason WSD warmup is an
absolute step count (`warmup_steps`, resolved by the spec), never a fraction of each length.
"""

from __future__ import annotations

import math

SCHEDULES = ("cosine", "linear", "constant", "wsd")
DECAY_SHAPES = ("linear", "sqrt")
DEFAULT_COOLDOWN = 0.2
DEFAULT_DECAY = "linear"


def decay_steps(steps: int, cooldown: float) -> int:
    """Steps of the final decay of a WSD run of `steps` steps (at least one)."""
    return max(1, int(math.floor(cooldown * steps + 0.5)))


def fork_step(steps: int, cooldown: float) -> int:
    """The step at which a WSD run of `steps` leaves its constant phase: (1 − cooldown)·steps,
    rounded. A branch of that length starts from its trunk's checkpoint at this step."""
    return int(steps) - decay_steps(steps, cooldown)


def lr_factor(step: int, total: int, warmup: float, schedule: str, *,
              warmup_steps: int | None = None, cooldown: float = DEFAULT_COOLDOWN,
              decay: str = DEFAULT_DECAY) -> float:
    """Multiplier of the peak learning rate for the update at `step` (0-based) of `total`.

    `warmup` is a fraction of `total`, unless `warmup_steps` gives the count (WSD does).
    """
    warm = int(warmup_steps) if warmup_steps is not None else int(round(warmup * total))
    if warm > 0 and step < warm:
        return (step + 1) / warm
    if schedule == "constant":
        return 1.0
    if schedule == "wsd":
        start = fork_step(total, cooldown)
        if step < start:
            return 1.0
        progress = min(1.0, (step - start) / (total - start))
        return 1.0 - (math.sqrt(progress) if decay == "sqrt" else progress)
    progress = (step - warm) / max(1, total - warm)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def training_lr_factor(step: int, total: int, training: dict, warmup: float) -> float:
    """`lr_factor` with the schedule settings of a trial's `training` dict."""
    return lr_factor(step, total, warmup, training.get("schedule", "cosine"),
                     warmup_steps=training.get("warmup_steps"),
                     cooldown=float(training.get("cooldown", DEFAULT_COOLDOWN)),
                     decay=training.get("decay", DEFAULT_DECAY))
