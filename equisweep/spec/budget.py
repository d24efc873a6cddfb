"""The FLOP budget cut (`budget.flops`).

Applied in spec order (the grid order, then samples): a trial is skipped when it would take the
cumulative total past the budget, and later, cheaper trials may still fit. A budget below the
cheapest trial is an error.
"""

from __future__ import annotations

from collections.abc import Iterable

from equisweep.errors import UserError


def apply_budget(trials: Iterable, budget: float | None, spent: float = 0.0) -> tuple[list, list]:
    """Split trials (or cells: anything with `total_flops`) into (kept, skipped) under `budget`.

    In the given order, a trial is kept when the cumulative FLOPs (starting at `spent`, e.g.
    what finished trials already used) stay within the budget, else skipped; a later, cheaper
    trial may still be kept. With nothing spent and nothing admitted, UserError.
    """
    trials = list(trials)
    if budget is None:
        return trials, []
    kept, skipped, total = [], [], float(spent)
    for t in trials:
        cost = float(t.total_flops)
        if total + cost <= budget * (1 + 1e-12):
            kept.append(t)
            total += cost
        else:
            skipped.append(t)
    if trials and not kept and spent == 0:
        cheapest = min(float(t.total_flops) for t in trials)
        raise UserError(
            f"budget.flops: {budget:.4g} admits no trial; the cheapest needs {cheapest:.4g}"
        )
    return kept, skipped


def admitted_per_cell(
    cells: list, trials_per_cell: int, budget: float | None, spent: float = 0.0
) -> list[tuple]:
    """(cell, trials admitted) for every cell, where each cell's `trials_per_cell` slots are
    planned in spec order: the budget cut for sweeps whose trials are sampled later (Optuna)."""
    slots = [c for c in cells for _ in range(trials_per_cell)]
    kept, _ = apply_budget(slots, budget, spent)
    counts: dict[str, int] = {}
    for c in kept:
        counts[c.key] = counts.get(c.key, 0) + 1
    return [(c, counts.get(c.key, 0)) for c in cells]
