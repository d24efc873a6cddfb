"""WSD trunks and branches: which trials share a run, and what a sweep really spends.

Under `training.schedule: wsd` the trials of one *share* — the same group (family, size,
train_trajectories, augment, seed, task, training) and the same hyperparameters, differing
only in `steps` — are trained by one run: the *trunk* is the longest length and runs its own
WSD schedule; every shorter length S is a *branch* that starts from the trunk's checkpoint at
`fork_step(S)` = (1 − cooldown)·S and trains only its decay, S − fork_step(S) steps. A branch's
trial config is exactly that of a standalone WSD run of S steps (so its key, curve and FLOPs
are those of the standalone run); only the compute spent is smaller.

Two numbers describe a sweep's cost, and both are defined here:
- *point FLOPs*: Σ flops_per_step·steps over trials, what each point costs standalone and what
  the fits see;
- *spend*: the FLOPs training really uses, shared trunk steps counted once:
  per share, flops_per_step·(S_max + Σ_{S < S_max} decay_steps(S)). The budget caps this.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from equisweep.schedule import DEFAULT_COOLDOWN, decay_steps, fork_step
from equisweep.spec.identity import canonical, trial_key


def is_wsd(spec) -> bool:
    return spec.training.get("schedule") == "wsd"


def cooldown(spec) -> float:
    return float(spec.training.get("cooldown", DEFAULT_COOLDOWN))


def group_key(spec, cell) -> str:
    """Hash of a cell's identity without its length: the cells of one group share trunks."""
    return trial_key({
        "family": cell.family, "size": cell.size,
        "train_trajectories": cell.train_trajectories, "augment": cell.augment,
        "seed": cell.seed, "task": spec.task.to_dict(), "training": spec.training,
    })


def share_id(group: str, hparams: dict | None, sample: int | None = None) -> str:
    """One share: a group and one hyperparameter sample (given, or the n-th still to ask)."""
    if hparams is not None:
        blob = json.dumps(canonical(hparams), sort_keys=True, separators=(",", ":"))
        return f"{group}:{blob}"
    return f"{group}:#{sample}"


def warmup_steps(spec, warmup: float) -> int:
    """WSD warmup in steps: `warmup` is a fraction of the grid's shortest length, so every
    length of a group warms up identically and can share its trunk."""
    return int(round(float(warmup) * min(spec.grid.steps)))


def check_wsd(c, grid, training: dict, hp_defaults: dict, search) -> None:
    """Under WSD, the warmup (a fraction of the shortest length) must end by that length's
    fork step, for the default warmup and for the largest one a search may draw."""
    if training.get("schedule") != "wsd" or "cooldown" not in training:
        return
    if not isinstance(training["cooldown"], (int, float)):
        return  # already reported
    shortest = min(grid.steps)
    fork = fork_step(shortest, float(training["cooldown"]))
    warmups = [("training.warmup", hp_defaults.get("warmup", 0.0))]
    p = search.params.get("warmup")
    if p is not None:
        top = max(p.value) if p.kind in ("choice", "uniform", "loguniform", "int") else p.value
        warmups.append(("search.params.warmup", top))
    for path, w in warmups:
        steps = int(round(float(w) * shortest))
        if steps > fork:
            c.add(path, f"{w} of the shortest length ({shortest} steps) is {steps} warmup steps, "
                        f"past its WSD fork at step {fork} (cooldown {training['cooldown']}); "
                        "lower warmup or cooldown")


def roles(trials: Iterable, cooldown_: float) -> dict[str, dict[str, Any]]:
    """key -> {"share", "trunk" (trunk's key), "fork_step" (None for the trunk itself)}.

    `trials` carry `.key`, `.steps` and `.share` (the share they train in); within a share the
    longest is the trunk, the others fork from it.
    """
    by_share: dict[str, list] = {}
    for t in trials:
        by_share.setdefault(t.share, []).append(t)
    out = {}
    for share, members in by_share.items():
        trunk = max(members, key=lambda t: t.steps)
        for t in members:
            out[t.key] = {"share": share, "trunk": trunk.key,
                          "fork_step": None if t is trunk else fork_step(t.steps, cooldown_)}
    return out


class _Share:
    """Greedy cost bookkeeping for one share: lengths kept so far and the FLOPs they spend."""

    def __init__(self, cooldown_: float):
        self.cooldown = cooldown_
        self.steps: list[int] = []

    def cost(self, steps: list[int], fps: float) -> float:
        if not steps:
            return 0.0
        top = max(steps)
        return fps * (top + sum(decay_steps(s, self.cooldown) for s in steps if s != top))


def spend(items: Iterable, cooldown_: float) -> float:
    """FLOPs really spent training `items` (anything with `flops_per_step`, `steps`, and
    `share`: None for a standalone run, or `forked` True for a branch whose fork checkpoint
    already exists, which costs only its decay)."""
    return _cut(list(items), None, 0.0, cooldown_)[2]


def apply_budget(items: Iterable, budget: float | None, cooldown_: float,
                 spent: float = 0.0) -> tuple[list, list]:
    """(kept, skipped) under `budget` counting what each item adds to the real spend.

    In the given order, an item is kept when the spend so far plus what it adds stays within
    the budget: a branch adds its decay; a new longest length of a share adds the extra trunk
    steps plus the decay of the previous trunk, which becomes a branch. A later, cheaper item
    may still fit. `spent` is what earlier runs of the sweep already used.
    """
    items = list(items)
    kept, skipped, _ = _cut(items, budget, spent, cooldown_)
    if items and not kept and spent == 0:
        from equisweep.errors import UserError

        cheapest = min(float(it.total_flops) for it in items)
        raise UserError(
            f"budget.flops: {budget:.4g} admits no trial; the cheapest needs {cheapest:.4g}")
    return kept, skipped


def _cut(items, budget, spent, cooldown_):
    shares: dict[str, _Share] = {}
    kept, skipped, total = [], [], float(spent)
    for it in items:
        fps, steps = float(it.flops_per_step), int(it.steps)
        share = getattr(it, "share", None)
        if getattr(it, "forked", False):
            add = fps * decay_steps(steps, cooldown_)
        elif share is None:
            add = fps * steps
        else:
            s = shares.setdefault(share, _Share(cooldown_))
            add = s.cost(s.steps + [steps], fps) - s.cost(s.steps, fps)
        if budget is None or total + add <= budget * (1 + 1e-12):
            kept.append(it)
            total += add
            if share is not None and not getattr(it, "forked", False):
                shares[share].steps.append(steps)
        else:
            skipped.append(it)
    return kept, skipped, total - float(spent)


class Member:
    """A planned trial as the cost functions see it."""

    __slots__ = ("key", "steps", "flops_per_step", "share", "forked", "obj")

    def __init__(self, steps, flops_per_step, share=None, key=None, forked=False, obj=None):
        self.steps, self.flops_per_step, self.share = int(steps), float(flops_per_step), share
        self.key, self.forked, self.obj = key, forked, obj

    @property
    def total_flops(self) -> float:
        return self.flops_per_step * self.steps


def members(spec) -> list[Member]:
    """Every planned trial of `spec`, in spec order, with its share (None unless WSD). Optuna
    sweeps plan `samples_per_cell` shares per group, one per sample still to be asked."""
    wsd = is_wsd(spec)
    out = []
    if spec.search.method == "optuna":
        for cell in spec.cells():
            g = group_key(spec, cell)
            for i in range(spec.search.samples_per_cell):
                out.append(Member(cell.steps, cell.flops_per_step,
                                  share_id(g, None, i) if wsd else None, obj=cell))
        return out
    for t in spec.trials():
        cell = _cell_of(spec, t)
        share = share_id(group_key(spec, cell), t.hparams) if wsd else None
        out.append(Member(t.steps, t.flops_per_step, share, key=t.key, obj=t))
    return out


def _cell_of(spec, trial):
    cells = spec.__dict__.get("_cells_by_key")
    if cells is None:
        cells = {c.key: c for c in spec.cells()}
        object.__setattr__(spec, "_cells_by_key", cells)
    return cells[trial.cell_key]


def planned_spend(spec, spent: float = 0.0) -> dict[str, float]:
    """The sweep's cost before it runs: `points_flops` (Σ standalone FLOPs of the points, what
    the fits see) and `spend_flops` (what training will use, shared trunk steps counted once),
    both for every planned trial and for those the budget admits (`kept_*`)."""
    ms = members(spec)
    cd = cooldown(spec)
    kept, _ = apply_budget(ms, spec.budget_flops, cd, spent)
    return {
        "points_flops": sum(m.total_flops for m in ms),
        "spend_flops": spend(ms, cd),
        "kept_trials": len(kept),
        "kept_points_flops": sum(m.total_flops for m in kept),
        "kept_spend_flops": spend(kept, cd),
    }
