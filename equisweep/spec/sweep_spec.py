"""`SweepSpec`: a validated sweep and what it expands to (cells, trials, search space, budget).

Cells are enumerated in file order: families, sizes, steps, train_trajectories, augment, seed.
`search.method`:
* `grid`: every param is a `{choice: [...]}` list or a fixed value; a cell's trials are the
  cartesian product (params in sorted name order). `samples_per_cell` must stay 1.
* `random`: `samples_per_cell` draws per cell from a numpy Generator seeded by (`search.seed`,
  the cell's key), so a cell's samples never depend on the rest of the file. Draws that
  coincide are kept once.
* `optuna`: the driver asks a per-cell study for `samples_per_cell` trials; `trials()` raises
  ValueError, and `search_space()` / `optuna_space()` describe what to sample.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterable, Mapping
from typing import Any

from equisweep.spec import budget as _budget
from equisweep.spec import trunks as _trunks
from equisweep.spec.hparams import HPARAM_DEFAULTS, SearchSpec, draw
from equisweep.spec.identity import canonical, trial_key
from equisweep.spec.trials import POINT_FIELDS, Cell, TrialConfig, step_flops


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    sizes: list  # normalised size dicts
    augment: list  # [False], [True] or [False, True]


@dataclasses.dataclass(frozen=True)
class GridSpec:
    steps: list
    train_trajectories: list
    seed: list


@dataclasses.dataclass(frozen=True, eq=False)
class SweepSpec:
    """A validated sweep. Build it with `load_spec(path)` or `parse_spec(mapping)`."""

    name: str
    description: str
    task: Any  # equisweep.task.TaskConfig
    families: dict  # name -> FamilySpec
    grid: GridSpec
    search: SearchSpec
    training: dict  # the trial dict's `training` (warmup = the default warmup)
    hparam_defaults: dict
    resources: dict  # {"cpu": float, "gpu": float}
    budget: dict | None  # {"flops": float} or None
    max_concurrent: int
    retries: int
    store: str
    source: str | None = None
    raw: dict | None = None
    stack: Any = "off"  # training.stack (equisweep.spec.stacking): how trials run, not a trial

    @property
    def budget_flops(self) -> float | None:
        return None if self.budget is None else float(self.budget["flops"])

    # ---- cells ------------------------------------------------------------------------------
    def cells(self) -> list[Cell]:
        cached = self.__dict__.get("_cells")
        if cached is None:
            cached = list(self._make_cells())
            object.__setattr__(self, "_cells", cached)
        return list(cached)

    def _make_cells(self) -> Iterable[Cell]:
        from equisweep.models import count_params

        task_dict = self.task.to_dict()
        for family, fam in self.families.items():
            for size in fam.sizes:
                n_params = int(count_params(family, size))
                fps = step_flops(family, size, self.task, self.training["batch_size"])
                for steps, tt, augment, seed in itertools.product(
                    self.grid.steps, self.grid.train_trajectories, fam.augment, self.grid.seed
                ):
                    coords = (family, dict(size), steps, tt, augment, seed)
                    point = dict(zip(POINT_FIELDS, coords))
                    ident = {**point, "task": task_dict, "training": self.training}
                    yield Cell(**point, n_params=n_params, flops_per_step=fps, key=trial_key(ident))

    def sampler_seed(self, cell: Cell) -> int:
        """Seed for a cell's hparam sampler (random search, or the driver's Optuna sampler).
        Under WSD the lengths of a group draw the same samples: each sample is one trunk."""
        unit = _trunks.group_key(self, cell) if _trunks.is_wsd(self) else cell.key
        return int(trial_key({"cell": unit, "seed": self.search.seed}), 16) % 2**32

    def cell_trial(self, cell: Cell, hparams: Mapping[str, Any] | None = None) -> TrialConfig:
        """The trial of `cell` with `hparams` over the defaults (fixed params included)."""
        hp = dict(self.hparam_defaults)
        hp.update({k: p.value for k, p in self.search.params.items() if p.kind == "fixed"})
        for k, v in (hparams or {}).items():
            if k not in HPARAM_DEFAULTS:
                raise ValueError(f"unknown hparam {k!r}; searchable: {', '.join(HPARAM_DEFAULTS)}")
            hp[k] = v
        hp = canonical(hp)
        training = {**self.training, "warmup": hp["warmup"]}
        if _trunks.is_wsd(self):
            training["warmup_steps"] = _trunks.warmup_steps(self, hp["warmup"])
        return TrialConfig(
            **cell.point(),
            hparams=hp,
            task=self.task.to_dict(),
            training=training,
            n_params=cell.n_params,
            flops_per_step=cell.flops_per_step,
            cell_key=cell.key,
        )

    # ---- trials -----------------------------------------------------------------------------
    def trials(self) -> list[TrialConfig]:
        """Concrete trials for grid and random search, in spec order, unique by key."""
        method = self.search.method
        if method == "optuna":
            raise ValueError(
                "optuna search samples hparams in the driver: use cells(), search_space() "
                "and cell_trial(cell, hparams)"
            )
        out, seen = [], set()
        for cell in self.cells():
            for hp in self._cell_hparams(cell):
                trial = self.cell_trial(cell, hp)
                if trial.key not in seen:
                    seen.add(trial.key)
                    out.append(trial)
        return out

    def _cell_hparams(self, cell: Cell) -> list[dict]:
        searched = {k: p for k, p in sorted(self.search.params.items()) if p.kind != "fixed"}
        if self.search.method == "grid":
            names = list(searched)
            lists = [searched[n].value for n in names]
            return [dict(zip(names, combo)) for combo in itertools.product(*lists)]
        import numpy as np

        rng = np.random.default_rng(self.sampler_seed(cell))
        samples = []
        for _ in range(self.search.samples_per_cell):
            samples.append({n: draw(p, rng) for n, p in searched.items()})
        return samples

    def trials_per_cell(self) -> int:
        """Planned trials per cell (before de-duplication of coinciding random draws)."""
        if self.search.method == "grid":
            return math.prod(
                len(p.value) for p in self.search.params.values() if p.kind == "choice"
            )
        return self.search.samples_per_cell

    def n_trials(self) -> int:
        if self.search.method == "optuna":
            return len(self.cells()) * self.search.samples_per_cell
        return len(self.trials())

    def total_flops(self) -> float:
        """Training FLOPs of every planned trial, before the budget cut."""
        if self.search.method == "optuna":
            return sum(c.flops for c in self.cells()) * self.search.samples_per_cell
        return sum(t.total_flops for t in self.trials())

    # ---- search space -----------------------------------------------------------------------
    def search_space(self) -> dict[str, dict[str, Any]]:
        """Plain data: name -> {"type": loguniform|uniform|int, "low", "high"} |
        {"type": "choice", "choices"} | {"type": "fixed", "value"}."""
        return {name: p.to_dict() for name, p in self.search.params.items()}

    def optuna_space(self) -> dict[str, Any]:
        """The searched params as Optuna distributions (fixed params are left out)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        out: dict[str, Any] = {}
        for name, p in self.search.params.items():
            if p.kind == "choice":
                out[name] = CategoricalDistribution(list(p.value))
            elif p.kind == "int":
                out[name] = IntDistribution(p.value[0], p.value[1])
            elif p.kind in ("uniform", "loguniform"):
                out[name] = FloatDistribution(
                    float(p.value[0]), float(p.value[1]), log=p.kind == "loguniform"
                )
        return out

    # ---- budget -----------------------------------------------------------------------------
    def apply_budget(self, trials: Iterable, spent: float = 0.0) -> tuple[list, list]:
        """Split trials (or cells) into (kept, skipped) under `budget.flops`; see
        `equisweep.spec.budget.apply_budget`."""
        return _budget.apply_budget(trials, self.budget_flops, spent)

    def budgeted_cells(self, spent: float = 0.0) -> list[tuple[Cell, int]]:
        """(cell, trials admitted) for every cell: the budget cut for Optuna-style sweeps,
        where each cell's `trials_per_cell()` slots are planned in spec order."""
        return _budget.admitted_per_cell(
            self.cells(), self.trials_per_cell(), self.budget_flops, spent
        )
