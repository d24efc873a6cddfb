"""Sweep files: YAML -> validated `SweepSpec` -> grid cells -> trial configs with a stable key.

The schema is DESIGN §6. Choices a user (or the driver) needs to know:

- Every problem in a file is collected before anything is reported: `load_spec` raises one
  `SpecError` (a `UserError`) whose message joins the problems with "; " and whose
  `.problems` lists them, each starting with the field path (`grid.steps[1]: ...`).
- YAML is read with a safe loader (tags such as `!!python/object` are refused) that also reads
  `1e-3` as a number (PyYAML's YAML 1.1 rules would make it a string) and refuses duplicate
  keys (YAML keeps the last one silently).
- A cell is (family, size, steps, train_trajectories, augment, seed); cells are enumerated in
  file order: families, sizes, steps, train_trajectories, augment, seed.
- `search.method`:
  * `grid`: every param is a `{choice: [...]}` list or a fixed value; a cell's trials are the
    cartesian product (params in sorted name order). `samples_per_cell` must stay 1.
  * `random`: `samples_per_cell` draws per cell from a numpy Generator seeded by
    (`search.seed`, the cell's key), so a cell's samples never depend on the rest of the file.
    Draws that coincide are kept once.
  * `optuna`: the driver asks a per-cell study for `samples_per_cell` trials; `trials()` raises
    ValueError, and `search_space()` / `optuna_space()` describe what to sample.
- FLOPs of a trial = `count_flops(family, size, tokens=V_max, batch_size) * steps`, where
  V_max is the task's largest scene in vertex tokens. Evaluation passes are not counted: they
  are not training compute and are the same for every model at a given `eval_every`.
- `budget.flops` is applied in spec order (the grid order above, then samples): a trial is
  skipped when it would take the cumulative total past the budget, and later, cheaper trials
  may still fit. A budget below the cheapest trial is an error.
- The trial dict (contracts.md) always carries all six hparams; `training.warmup` in it equals
  `hparams.warmup`, so the two can never disagree.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import numbers
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from equisweep.errors import UserError

__all__ = [
    "Cell",
    "SpecError",
    "SweepSpec",
    "TrialConfig",
    "canonical",
    "load_spec",
    "parse_spec",
    "trial_key",
]

SEARCH_METHODS = ("grid", "random", "optuna")
SCHEDULES = ("cosine", "linear", "constant")
PRECISIONS = ("fp32", "bf16")
DISTRIBUTIONS = ("loguniform", "uniform", "choice", "int")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# Searchable hyperparameters: default and the open/closed interval a value must lie in.
HPARAM_DEFAULTS: dict[str, float] = {
    "lr": 1e-3,
    "weight_decay": 0.0,
    "grad_clip": 1.0,
    "warmup": 0.05,
    "beta1": 0.9,
    "beta2": 0.999,
}
_HPARAM_DOMAIN: dict[str, tuple[str, Any]] = {
    "lr": ("a number > 0", lambda v: v > 0),
    "weight_decay": ("a number >= 0", lambda v: v >= 0),
    "grad_clip": ("a number > 0", lambda v: v > 0),
    "warmup": ("a fraction in [0, 1)", lambda v: 0 <= v < 1),
    "beta1": ("a number in [0, 1)", lambda v: 0 <= v < 1),
    "beta2": ("a number in [0, 1)", lambda v: 0 <= v < 1),
}
TRAINING_DEFAULTS: dict[str, Any] = {
    "batch_size": 16,
    "schedule": "cosine",
    "warmup": 0.05,
    "eval_every": 50,
    "checkpoint_every": 100,
    "eval_batches": 4,
    "precision": "fp32",
}
_TOP_KEYS = (
    "name",
    "description",
    "task",
    "families",
    "grid",
    "search",
    "training",
    "resources",
    "budget",
    "max_concurrent",
    "retries",
    "store",
)
_REQUIRED_TOP = ("name", "task", "families", "grid")


# ---------------------------------------------------------------------------------------------
# canonical identity


def canonical(obj: Any) -> Any:
    """The JSON value a config hashes as.

    Floats are rounded to 15 significant digits (so `0.1 + 0.2` and `0.3` agree, and YAML's
    `1e-3`, `0.001`, `1.0e-3` all do), integral floats become ints (`2.0` == `2`), -0.0 is 0;
    tuples become lists; numpy scalars become Python numbers. NaN/inf and non-string keys
    raise ValueError/TypeError: they have no canonical JSON.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if hasattr(obj, "item") and not isinstance(obj, (Mapping, list, tuple)):
        obj = obj.item()  # numpy scalar
        if isinstance(obj, bool):
            return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        f = float(obj)
        if not math.isfinite(f):
            raise ValueError(f"no canonical JSON for {f!r}")
        rounded = float(f"{f:.15g}")
        f = rounded if math.isfinite(rounded) else f  # near float max, rounding overflows
        if f.is_integer() and abs(f) < 2**53:
            return int(f)
        return f
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"config keys must be strings, got {k!r}")
            out[k] = canonical(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    raise TypeError(f"no canonical JSON for {type(obj).__name__}: {obj!r}")


def trial_key(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of a config, first 16 hex."""
    blob = json.dumps(canonical(config), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# cells and trials


@dataclasses.dataclass(frozen=True)
class Cell:
    """One grid point; every trial of a cell costs the same FLOPs."""

    family: str
    size: dict
    steps: int
    train_trajectories: int
    augment: bool
    seed: int
    n_params: int
    flops_per_step: float
    key: str  # hash of the cell's fields plus task and training: seeds its samplers

    __hash__ = None  # type: ignore[assignment]  # size is a dict; use .key

    @property
    def flops(self) -> float:
        """Training FLOPs of one trial of this cell."""
        return self.flops_per_step * self.steps

    total_flops = flops  # so apply_budget takes cells as well as trials

    def to_dict(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "size": dict(self.size),
            "steps": self.steps,
            "train_trajectories": self.train_trajectories,
            "augment": self.augment,
            "seed": self.seed,
            "n_params": self.n_params,
            "flops_per_step": self.flops_per_step,
            "flops": self.flops,
            "key": self.key,
        }


@dataclasses.dataclass(frozen=True)
class TrialConfig:
    """A concrete trial: what the trainer receives (`to_dict()`) plus its cost."""

    family: str
    size: dict
    steps: int
    train_trajectories: int
    augment: bool
    seed: int
    hparams: dict
    task: dict
    training: dict
    n_params: int
    flops_per_step: float
    cell_key: str = ""

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """The trial config dict of contracts.md, in canonical form (what `key` hashes)."""
        return canonical(
            {
                "family": self.family,
                "size": self.size,
                "steps": self.steps,
                "train_trajectories": self.train_trajectories,
                "augment": self.augment,
                "seed": self.seed,
                "hparams": self.hparams,
                "task": self.task,
                "training": self.training,
            }
        )

    @property
    def key(self) -> str:
        return trial_key(self.to_dict())

    @property
    def total_flops(self) -> float:
        return self.flops_per_step * self.steps

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialConfig:
        """Rebuild from a trial dict (e.g. the store's `config` column); recomputes the cost."""
        from equisweep.models import count_params, validate_size
        from equisweep.task import TaskConfig

        missing = [
            k
            for k in (
                "family",
                "size",
                "steps",
                "train_trajectories",
                "augment",
                "seed",
                "hparams",
                "task",
                "training",
            )
            if k not in d
        ]
        if missing:
            raise UserError(f"trial config: missing {', '.join(missing)}")
        task = TaskConfig.from_dict(dict(d["task"]))
        size = validate_size(d["family"], dict(d["size"]))
        training = dict(d["training"])
        return cls(
            family=d["family"],
            size=size,
            steps=int(d["steps"]),
            train_trajectories=int(d["train_trajectories"]),
            augment=bool(d["augment"]),
            seed=int(d["seed"]),
            hparams={**HPARAM_DEFAULTS, **dict(d["hparams"])},
            task=task.to_dict(),
            training=training,
            n_params=int(count_params(d["family"], size)),
            flops_per_step=_flops_per_step(d["family"], size, task, training["batch_size"]),
        )


def _max_tokens(task) -> int:
    """Vertex tokens of the task's largest possible scene."""
    if hasattr(task, "max_tokens"):
        return int(task.max_tokens())
    # Per-kind vertex counts as documented by TaskConfig: hull = vertices, prism = vertices
    # rounded down to even, box 8, tetrahedron 4, icosahedron 12.
    fixed = {"box": 8, "tetrahedron": 4, "icosahedron": 12}
    per_body = max(
        fixed.get(kind, task.vertices - task.vertices % 2 if kind == "prism" else task.vertices)
        for kind in task.shapes
    )
    return int(task.bodies[1]) * per_body


def _flops_per_step(family, size, task, batch_size) -> float:
    from equisweep.models import count_flops

    return float(count_flops(family, size, tokens=_max_tokens(task), batch_size=batch_size))


# ---------------------------------------------------------------------------------------------
# the spec


@dataclasses.dataclass(frozen=True)
class Param:
    """One `search.params` entry: `kind` is fixed|loguniform|uniform|choice|int."""

    kind: str
    value: Any  # fixed: the value; choice: list; the rest: [lo, hi]

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "fixed":
            return {"type": "fixed", "value": self.value}
        if self.kind == "choice":
            return {"type": "choice", "choices": list(self.value)}
        return {"type": self.kind, "low": self.value[0], "high": self.value[1]}


@dataclasses.dataclass(frozen=True)
class SearchSpec:
    method: str = "grid"
    samples_per_cell: int = 1
    params: dict = dataclasses.field(default_factory=dict)  # name -> Param
    seed: int = 0


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
                fps = _flops_per_step(family, size, self.task, self.training["batch_size"])
                for steps, tt, augment, seed in itertools.product(
                    self.grid.steps, self.grid.train_trajectories, fam.augment, self.grid.seed
                ):
                    ident = {
                        "family": family,
                        "size": size,
                        "steps": steps,
                        "train_trajectories": tt,
                        "augment": augment,
                        "seed": seed,
                        "task": task_dict,
                        "training": self.training,
                    }
                    yield Cell(
                        family,
                        dict(size),
                        steps,
                        tt,
                        augment,
                        seed,
                        n_params,
                        fps,
                        trial_key(ident),
                    )

    def sampler_seed(self, cell: Cell) -> int:
        """Seed for a cell's hparam sampler (random search, or the driver's Optuna sampler)."""
        return int(trial_key({"cell": cell.key, "seed": self.search.seed}), 16) % 2**32

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
        return TrialConfig(
            family=cell.family,
            size=dict(cell.size),
            steps=cell.steps,
            train_trajectories=cell.train_trajectories,
            augment=cell.augment,
            seed=cell.seed,
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
            samples.append({n: _draw(p, rng) for n, p in searched.items()})
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
        """Split trials (or cells) into (kept, skipped) under `budget.flops`.

        In the given order, a trial is kept when the cumulative FLOPs (starting at `spent`,
        e.g. what finished trials already used) stay within the budget, else skipped; a later,
        cheaper trial may still be kept. With nothing spent and nothing admitted, UserError.
        """
        trials = list(trials)
        if self.budget is None:
            return trials, []
        budget = self.budget_flops
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

    def budgeted_cells(self, spent: float = 0.0) -> list[tuple[Cell, int]]:
        """(cell, trials admitted) for every cell: the budget cut for Optuna-style sweeps,
        where each cell's `trials_per_cell()` slots are planned in spec order."""
        slots = [c for c in self.cells() for _ in range(self.trials_per_cell())]
        kept, _ = self.apply_budget(slots, spent)
        counts: dict[str, int] = {}
        for c in kept:
            counts[c.key] = counts.get(c.key, 0) + 1
        return [(c, counts.get(c.key, 0)) for c in self.cells()]


def _draw(p: Param, rng) -> Any:
    if p.kind == "choice":
        return p.value[int(rng.integers(len(p.value)))]
    lo, hi = p.value
    if p.kind == "int":
        return int(rng.integers(lo, hi + 1))  # inclusive, as Optuna's IntDistribution
    if p.kind == "uniform":
        return float(rng.uniform(lo, hi))
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


# ---------------------------------------------------------------------------------------------
# reading YAML


class SpecError(UserError):
    """A sweep file with problems; `.problems` lists each (field path first)."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = list(problems)
        super().__init__(f"{source}: " + "; ".join(self.problems))


class _Loader(yaml.SafeLoader):
    """Safe YAML plus numbers like `1e-3`, and duplicate keys refused."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable key: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


# YAML 1.1 needs a dot in a float ("1.0e-3"); users write 1e-3 and mean a number.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file safely; UserError naming the file for anything unreadable."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file")
    if p.is_dir():
        raise UserError(f"{p}: is a directory, expected a sweep YAML file")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UserError(f"{p}: cannot read ({exc.strerror})") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(exc.problem or exc.context or "").split())
        if "could not determine a constructor" in problem:
            problem += " (sweep files are plain YAML data; object tags are refused)"
        raise UserError(f"{p}: not a valid sweep YAML: {where}{problem}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{p}: not a valid sweep YAML: {' '.join(str(exc).split())}") from None


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read, validate and return a sweep; SpecError lists every problem found."""
    data = read_yaml(path)
    if data is None:
        raise UserError(f"{path}: empty sweep file (expected a mapping with name, task, ...)")
    return parse_spec(data, source=str(path))


def parse_spec(data: Any, source: str = "<sweep>") -> SweepSpec:
    """Validate a mapping (the parsed YAML) and build the spec; SpecError lists all problems."""
    if not isinstance(data, dict):
        raise UserError(
            f"{source}: the top level must be a mapping of sweep fields "
            f"({', '.join(_REQUIRED_TOP)}, ...), got {_kind(data)}"
        )
    c = _Check()
    c.mapping(data, "", _TOP_KEYS, _REQUIRED_TOP)
    name = _parse_name(c, data["name"]) if "name" in data else _BAD
    description = data.get("description", "")
    if not isinstance(description, str):
        c.add("description", f"must be a string, got {_show(description)}")
    task = _parse_task(c, data["task"]) if "task" in data else _BAD
    families = _parse_families(c, data["families"]) if "families" in data else _BAD
    grid = _parse_grid(c, data["grid"], task) if "grid" in data else _BAD
    training, hp_defaults = _parse_training(c, data.get("training", {}))
    search = _parse_search(c, data.get("search", {}))
    resources = _parse_resources(c, data.get("resources", {}))
    budget = _parse_budget(c, data.get("budget"))
    max_concurrent = c.integer(data.get("max_concurrent", 1), "max_concurrent", 1)
    retries = c.integer(data.get("retries", 0), "retries", 0)
    store = data.get("store", os.environ.get("EQUISWEEP_STORE") or "results")
    if not isinstance(store, str) or not store.strip():
        c.add("store", f"must be a path or URI string, got {_show(store)}")
    if c.problems:
        raise SpecError(source, c.problems)

    spec = SweepSpec(
        name=name,
        description=description,
        task=task,
        families=families,
        grid=grid,
        search=search,
        training=training,
        hparam_defaults=hp_defaults,
        resources=resources,
        budget=budget,
        max_concurrent=max_concurrent,
        retries=retries,
        store=store,
        source=source,
        raw=data,
    )
    if budget is not None:
        cheapest = min(cell.flops for cell in spec.cells())
        if cheapest > budget["flops"]:
            raise SpecError(
                source,
                [
                    f"budget.flops: {budget['flops']:.4g} admits no trial; the cheapest trial "
                    f"needs {cheapest:.4g} FLOPs"
                ],
            )
    return spec


# ---------------------------------------------------------------------------------------------
# validation helpers: each returns the cleaned value, or _BAD after recording a problem

_BAD: Any = object()


def _kind(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(v), type(v).__name__
    )


def _show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (dict, list)):
        s = json.dumps(v, default=str)
        return s if len(s) <= 60 else s[:57] + "..."
    return repr(v)


def _unknown(key: Any, allowed: Iterable[str], what: str = "unknown key") -> str:
    allowed = list(allowed)
    hint = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    msg = what + (f" (did you mean {hint[0]!r}?)" if hint else "")
    return f"{msg}; allowed: {', '.join(allowed)}"


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _is_int(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, numbers.Integral):
        return True
    # YAML `steps: 1e5` is a float; accept it when it is a whole number.
    return isinstance(v, float) and math.isfinite(v) and v.is_integer()


def _is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, numbers.Real) and math.isfinite(float(v))


class _Check:
    def __init__(self):
        self.problems: list[str] = []

    def add(self, path: str, msg: str) -> Any:
        self.problems.append(f"{path}: {msg}" if path else msg)
        return _BAD

    def mapping(self, v, path, allowed, required=()) -> dict | Any:
        if not isinstance(v, dict):
            return self.add(path, f"must be a mapping, got {_show(v)}")
        for k in v:
            if k not in allowed:
                self.add(_join(path, k), _unknown(k, allowed))
        for k in required:
            if k not in v:
                self.add(_join(path, k), "required")
        return v

    def integer(self, v, path, minimum=1) -> int | Any:
        if not _is_int(v) or v < minimum:
            word = {1: "a positive integer", 0: "a non-negative integer"}.get(
                minimum, f"an integer >= {minimum}"
            )
            return self.add(path, f"must be {word}, got {_show(v)}")
        return int(v)

    def number(self, v, path, what, ok) -> float | Any:
        if not _is_number(v) or not ok(v):
            return self.add(path, f"must be {what}, got {_show(v)}")
        return v

    def one_of(self, v, path, allowed) -> str | Any:
        if not isinstance(v, str) or v not in allowed:
            hint = difflib.get_close_matches(str(v), allowed, n=1, cutoff=0.6)
            tail = f" (did you mean {hint[0]!r}?)" if hint else ""
            return self.add(path, f"must be one of {', '.join(allowed)}, got {_show(v)}{tail}")
        return v

    def int_list(self, v, path, minimum=1) -> list | Any:
        """A list of distinct integers; a single integer is a list of one."""
        if not isinstance(v, list):
            v = self.integer(v, path, minimum)
            return _BAD if v is _BAD else [v]
        if not v:
            return self.add(path, "must be a non-empty list")
        out, seen = [], {}
        for i, x in enumerate(v):
            x = self.integer(x, f"{path}[{i}]", minimum)
            if x is _BAD:
                continue
            if x in seen:
                self.add(f"{path}[{i}]", f"duplicate of {path}[{seen[x]}] ({x})")
                continue
            seen[x] = i
            out.append(x)
        return out if len(out) == len(v) else _BAD


def _parse_name(c: _Check, v: Any) -> str | Any:
    rule = "must match [A-Za-z0-9][A-Za-z0-9_.-]* (no '/', no '..'; at most 128 characters)"
    if not isinstance(v, str) or not NAME_RE.fullmatch(v) or ".." in v or len(v) > 128:
        return c.add("name", f"{rule}, got {_show(v)}")
    return v


def _parse_task(c: _Check, raw: Any):
    if not isinstance(raw, dict):
        return c.add(
            "task", f"must be a mapping (name: rigid_body, trajectories, ...), got {_show(raw)}"
        )
    from equisweep.task import TaskConfig

    try:
        return TaskConfig.from_dict(dict(raw))
    except UserError as exc:
        msg = str(exc)
        return c.add("" if msg.startswith("task") else "task", msg)


def _family_registry():
    from equisweep.models import FAMILIES, validate_size

    return FAMILIES, validate_size


def _is_equivariant(entry: Any, name: str) -> bool:
    flag = (
        entry.get("equivariant")
        if isinstance(entry, Mapping)
        else getattr(entry, "equivariant", None)
    )
    return bool(flag) if flag is not None else name == "gatr"


def _ladder(entry: Any) -> list:
    return list(entry["ladder"] if isinstance(entry, Mapping) else entry.ladder)


def _parse_families(c: _Check, raw: Any) -> dict | Any:
    families, validate_size = _family_registry()
    allowed = list(families)
    if not isinstance(raw, dict) or not raw:
        return c.add(
            "families",
            f"must map family names ({', '.join(allowed)}) to {{sizes: [...]}}, got {_show(raw)}",
        )
    out = {}
    for name, fam in raw.items():
        path = f"families.{name}"
        if name not in families:
            c.add(path, _unknown(name, allowed, "unknown family"))
            continue
        if c.mapping(fam, path, ("sizes", "augment"), ("sizes",)) is _BAD:
            continue
        sizes = (
            _parse_sizes(c, fam.get("sizes"), name, families[name], validate_size, f"{path}.sizes")
            if "sizes" in fam
            else _BAD
        )
        augment = _parse_augment(
            c, fam.get("augment", False), name, families[name], f"{path}.augment"
        )
        if sizes is not _BAD and augment is not _BAD:
            out[name] = FamilySpec(sizes=sizes, augment=augment)
    return out if len(out) == len(raw) else _BAD


def _parse_sizes(c, v, family, entry, validate_size, path) -> list | Any:
    if v == "ladder":
        v = _ladder(entry)
    if not isinstance(v, list) or not v:
        return c.add(
            path,
            "must be a non-empty list of sizes like {width: 8, depth: 2}, or "
            f"'ladder' for the family's whole ladder; got {_show(v)}",
        )
    out, seen, bad = [], {}, False
    for i, size in enumerate(v):
        p = f"{path}[{i}]"
        if not isinstance(size, dict):
            bad = c.add(p, f"must be a mapping like {{width: 8, depth: 2}}, got {_show(size)}")
            continue
        try:
            norm = dict(validate_size(family, dict(size)))
        except UserError as exc:
            bad = c.add(p, str(exc))
            continue
        ident = json.dumps(canonical(norm), sort_keys=True)
        if ident in seen:
            bad = c.add(p, f"the same size as {path}[{seen[ident]}] once defaults are filled in")
            continue
        seen[ident] = i
        out.append(norm)
    return _BAD if bad is _BAD else out


def _parse_augment(c, v, family, entry, path) -> list | Any:
    values = v if isinstance(v, list) else [v]
    if (
        not values
        or not all(isinstance(x, bool) for x in values)
        or len(set(values)) != len(values)
    ):
        return c.add(path, f"must be true, false or [false, true], got {_show(v)}")
    if True in values and _is_equivariant(entry, family):
        return c.add(
            path,
            f"{family} is equivariant already; augmentation is for "
            "non-equivariant families (drop the key or set it to false)",
        )
    return values


def _parse_grid(c: _Check, raw: Any, task) -> GridSpec | Any:
    keys = ("steps", "train_trajectories", "seed")
    if c.mapping(raw, "grid", keys, ("steps",)) is _BAD:
        return _BAD
    steps = c.int_list(raw["steps"], "grid.steps", 1) if "steps" in raw else _BAD
    pool = None if task is _BAD else task.trajectories
    if "train_trajectories" in raw:
        tt = c.int_list(raw["train_trajectories"], "grid.train_trajectories", 1)
        if tt is not _BAD and pool is not None:
            raw_tt = raw["train_trajectories"]
            for i, n in enumerate(tt):
                if n > pool:
                    p = (
                        f"grid.train_trajectories[{i}]"
                        if isinstance(raw_tt, list)
                        else ("grid.train_trajectories")
                    )
                    tt = c.add(p, f"{n} exceeds task.trajectories ({pool}), the train pool")
    else:
        tt = [pool] if pool is not None else _BAD
    seed = c.int_list(raw.get("seed", [0]), "grid.seed", 0)
    if _BAD in (steps, tt, seed):
        return _BAD
    return GridSpec(steps=steps, train_trajectories=tt, seed=seed)


def _hparam(c: _Check, name: str, v: Any, path: str) -> Any:
    what, ok = _HPARAM_DOMAIN[name]
    return c.number(v, path, what, ok)


_HP_FIELDS = tuple(k for k in HPARAM_DEFAULTS if k != "warmup")


def _parse_training(c: _Check, raw: Any) -> tuple[dict, dict]:
    allowed = tuple(TRAINING_DEFAULTS) + _HP_FIELDS
    if c.mapping(raw, "training", allowed) is _BAD:
        return _BAD, _BAD
    t = {**TRAINING_DEFAULTS, **{k: v for k, v in raw.items() if k in TRAINING_DEFAULTS}}
    for k in ("batch_size", "eval_every", "checkpoint_every", "eval_batches"):
        t[k] = c.integer(t[k], f"training.{k}", 1)
    t["schedule"] = c.one_of(t["schedule"], "training.schedule", SCHEDULES)
    t["precision"] = c.one_of(t["precision"], "training.precision", PRECISIONS)
    t["warmup"] = _hparam(c, "warmup", t["warmup"], "training.warmup")
    hp = dict(HPARAM_DEFAULTS, warmup=t["warmup"])
    for k in _HP_FIELDS:
        if k in raw:
            hp[k] = _hparam(c, k, raw[k], f"training.{k}")
    return t, hp


def _parse_search(c: _Check, raw: Any) -> SearchSpec | Any:
    if c.mapping(raw, "search", ("method", "samples_per_cell", "params", "seed")) is _BAD:
        return _BAD
    method = c.one_of(raw.get("method", "grid"), "search.method", SEARCH_METHODS)
    spc = c.integer(raw.get("samples_per_cell", 1), "search.samples_per_cell", 1)
    seed = c.integer(raw.get("seed", 0), "search.seed", 0)
    params_raw = raw.get("params", {})
    if not isinstance(params_raw, dict):
        return c.add(
            "search.params", f"must be a mapping of hparam -> distribution, got {_show(params_raw)}"
        )
    params, bad = {}, False
    for name, v in params_raw.items():
        path = f"search.params.{name}"
        if name not in HPARAM_DEFAULTS:
            bad = c.add(path, _unknown(name, HPARAM_DEFAULTS, "not a searchable hyperparameter"))
            continue
        p = _parse_param(c, name, v, path)
        if p is _BAD:
            bad = True
        else:
            params[name] = p
    if method == "grid" and params:
        for name, p in params.items():
            if p.kind not in ("choice", "fixed"):
                bad = c.add(
                    f"search.params.{name}",
                    f"grid search needs {{choice: [...]}} or a "
                    f"fixed value, got {p.kind} (use method random or optuna)",
                )
    if method == "grid" and spc is not _BAD and spc != 1:
        bad = c.add(
            "search.samples_per_cell",
            f"must be 1 for grid search (it enumerates the "
            f"choice lists), got {spc}; use method random or optuna",
        )
    if method in ("random", "optuna") and not bad:
        if not any(p.kind != "fixed" for p in params.values()):
            bad = c.add(
                "search.params",
                f"{method} search needs at least one sampled parameter, "
                "e.g. lr: {loguniform: [1.0e-4, 3.0e-3]}",
            )
    if bad or _BAD in (method, spc, seed):
        return _BAD
    return SearchSpec(method=method, samples_per_cell=spc, params=params, seed=seed)


def _parse_param(c: _Check, name: str, v: Any, path: str) -> Param | Any:
    if not isinstance(v, dict):
        if isinstance(v, list):
            return c.add(path, f"a list is ambiguous; write {{choice: {_show(v)}}}")
        value = _hparam(c, name, v, path)
        return _BAD if value is _BAD else Param("fixed", value)
    if len(v) != 1:
        return c.add(
            path,
            "must be one of {loguniform: [lo, hi]}, {uniform: [lo, hi]}, "
            f"{{choice: [...]}}, {{int: [lo, hi]}} or a number; got {_show(v)}",
        )
    ((kind, arg),) = v.items()
    path = f"{path}.{kind}"
    if kind not in DISTRIBUTIONS:
        return c.add(path, _unknown(kind, DISTRIBUTIONS, "unknown distribution"))
    if kind == "choice":
        if not isinstance(arg, list) or not arg:
            return c.add(path, f"must be a non-empty list, got {_show(arg)}")
        values = [_hparam(c, name, x, f"{path}[{i}]") for i, x in enumerate(arg)]
        if _BAD in values:
            return _BAD
        if len({canonical(x) for x in values}) != len(values):
            return c.add(path, f"lists a value twice: {_show(arg)}")
        return Param("choice", values)
    if not isinstance(arg, list) or len(arg) != 2:
        return c.add(path, f"must be [low, high], got {_show(arg)}")
    lo, hi = (_hparam(c, name, x, f"{path}[{i}]") for i, x in enumerate(arg))
    if _BAD in (lo, hi):
        return _BAD
    if kind == "int" and not (_is_int(lo) and _is_int(hi)):
        return c.add(path, f"must be [low, high] integers, got {_show(arg)}")
    if lo >= hi:
        return c.add(path, f"low must be below high, got [{lo}, {hi}]")
    if kind == "loguniform" and lo <= 0:
        return c.add(path, f"low must be > 0 on a log scale, got {lo}")
    if kind == "int":
        lo, hi = int(lo), int(hi)
    return Param(kind, [lo, hi])


def _parse_resources(c: _Check, raw: Any) -> dict | Any:
    if c.mapping(raw, "resources", ("cpu", "gpu")) is _BAD:
        return _BAD
    out = {}
    for key, default, what, ok in (
        ("cpu", 1, "a number > 0", lambda v: v > 0),
        ("gpu", 0, "a number >= 0", lambda v: v >= 0),
    ):
        v = c.number(raw.get(key, default), f"resources.{key}", what, ok)
        if v is not _BAD and v > 1 and not float(v).is_integer():
            # Ray only splits a single unit: 0.5 GPU is fine, 1.5 is not.
            v = c.add(
                f"resources.{key}",
                f"above 1 must be a whole number (Ray shares only fractions of one unit), got {v}",
            )
        out[key] = v if v is _BAD else float(v)
    return out


def _parse_budget(c: _Check, raw: Any) -> dict | None | Any:
    if raw is None:
        return None
    if c.mapping(raw, "budget", ("flops",), ("flops",)) is _BAD or "flops" not in raw:
        return _BAD
    v = c.number(raw["flops"], "budget.flops", "a number > 0 (training FLOPs)", lambda v: v > 0)
    return _BAD if v is _BAD else {"flops": float(v)}
