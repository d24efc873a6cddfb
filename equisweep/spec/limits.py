"""Bounds on what a sweep file may ask for, checked before anything is expanded or started.

A sweep file is input from anywhere (a colleague, a generator script, a paste): it must not
be able to hang `validate`, exhaust memory, or put numbers into the store that its int64
columns cannot hold. Each bound is refused with one line naming the field.

- The file: at most `MAX_FILE_BYTES`; YAML nested at most `MAX_DEPTH` levels; at most
  `MAX_NODES` values once aliases are expanded (an "alias bomb" is a few lines whose
  expansion is exponential).
- Numbers: every integer fits int64, every float is finite (steps, seeds, sizes, lrs, ...).
- Trials: grid × sizes × search at most `MAX_TRIALS`, counted without expanding anything.
"""

from __future__ import annotations

import math
from typing import Any

MAX_FILE_BYTES = 4 * 2**20
MAX_DEPTH = 32
MAX_NODES = 200_000
MAX_TRIALS = 100_000
_INT64 = (-(2**63), 2**63 - 1)


def number_problems(data: Any, path: str = "") -> list[str]:
    """`path: ...` for every integer outside int64 and every non-finite float in `data`."""
    problems: list[str] = []
    todo = [(data, path)]
    while todo:
        value, where = todo.pop()
        if isinstance(value, dict):
            todo.extend((v, f"{where}.{k}" if where else str(k)) for k, v in value.items())
        elif isinstance(value, (list, tuple)):
            todo.extend((v, f"{where}[{i}]") for i, v in enumerate(value))
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
            problems.append(f"{where or '<top>'}: {value} does not fit a 64-bit integer")
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{where or '<top>'}: must be a finite number, got {value}")
    return sorted(problems)


def expanded_nodes(node) -> int:
    """How many YAML nodes `node` stands for once every alias is expanded (linear time:
    each distinct node is counted once and its expansion reused)."""
    sizes: dict[int, int] = {}
    order, stack, seen = [], [node], set()
    while stack:  # iterative post-order: nesting depth is bounded elsewhere, but be safe
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        order.append(n)
        stack.extend(_children(n))
    for n in reversed(order):
        sizes[id(n)] = 1 + sum(sizes.get(id(c), 1) for c in _children(n))
        if sizes[id(n)] > MAX_NODES:
            return sizes[id(n)]
    return sizes[id(node)]


def _children(node) -> list:
    value = getattr(node, "value", None)
    if not isinstance(value, list):
        return []
    out = []
    for item in value:
        out.extend(item if isinstance(item, tuple) else (item,))
    return out


def trial_count_factors(spec) -> dict[str, int]:
    """The fields whose product is the planned trial count, each with its factor."""
    search = spec.search
    if search.method == "grid":
        per_cell = {"search.params (grid choices)": math.prod(
            len(p.value) for p in search.params.values() if p.kind == "choice")}
    else:
        per_cell = {"search.samples_per_cell": search.samples_per_cell}
    return {"families (sizes × augment)": sum(len(f.sizes) * len(f.augment)
                                             for f in spec.families.values()),
            "grid.steps": len(spec.grid.steps),
            "grid.train_trajectories": len(spec.grid.train_trajectories),
            "grid.seed": len(spec.grid.seed), **per_cell}


def trial_count_bound(spec) -> int:
    """Planned trials of a parsed spec, from list lengths alone (nothing is expanded)."""
    return math.prod(trial_count_factors(spec).values())


def too_many_trials(spec) -> str | None:
    """One line naming the field that contributes most, when the count is over the bound."""
    planned = trial_count_bound(spec)
    if planned <= MAX_TRIALS:
        return None
    factors = trial_count_factors(spec)
    field = max(factors, key=factors.get)
    return (f"{field}: {factors[field]} makes {planned} trials planned "
            f"({' × '.join(f'{v} {k}' for k, v in factors.items())}); at most {MAX_TRIALS} "
            f"per sweep (lower it, or split the sweep into several)")
