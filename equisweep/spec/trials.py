"""Cells and trials: a grid point with its cost, and the concrete trial config a trainer gets.

A cell is (family, size, steps, train_trajectories, augment, seed); every trial of a cell costs
the same FLOPs: `count_flops(family, size, tokens=V_max, batch_size) * steps`, where V_max is
the task's largest scene in vertex tokens. Evaluation passes are not counted here: they are
not training compute; the trainer reports them apart, as the metric column `eval_flops`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from equisweep.errors import UserError
from equisweep.spec.hparams import HPARAM_DEFAULTS
from equisweep.spec.identity import canonical, trial_key


@dataclasses.dataclass(frozen=True)
class GridPoint:
    """The grid coordinates (DESIGN §6) a cell and each of its trials share."""

    family: str
    size: dict
    steps: int
    train_trajectories: int
    augment: bool
    seed: int

    __hash__ = None  # type: ignore[assignment]  # size is a dict; use .key

    def point(self) -> dict[str, Any]:
        """The grid coordinates as a dict (a copy of `size`)."""
        return {name: getattr(self, name) for name in POINT_FIELDS} | {"size": dict(self.size)}


POINT_FIELDS = tuple(f.name for f in dataclasses.fields(GridPoint))
# The trial config dict a trainer receives (and its key hashes): the point, then what the
# sweep adds to it.
CONFIG_FIELDS = (*POINT_FIELDS, "hparams", "task", "training")


@dataclasses.dataclass(frozen=True)
class Cell(GridPoint):
    """One grid point; every trial of a cell costs the same FLOPs."""

    n_params: int
    flops_per_step: float
    key: str  # hash of the cell's fields plus task and training: seeds its samplers

    @property
    def flops(self) -> float:
        """Training FLOPs of one trial of this cell."""
        return self.flops_per_step * self.steps

    total_flops = flops  # so apply_budget takes cells as well as trials

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.point(),
            "n_params": self.n_params,
            "flops_per_step": self.flops_per_step,
            "flops": self.flops,
            "key": self.key,
        }


@dataclasses.dataclass(frozen=True)
class TrialConfig(GridPoint):
    """A concrete trial: what the trainer receives (`to_dict()`) plus its cost."""

    hparams: dict
    task: dict
    training: dict
    n_params: int
    flops_per_step: float
    cell_key: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The trial config dict (DESIGN §7 `config`), canonical: what `key` hashes."""
        return canonical({name: getattr(self, name) for name in CONFIG_FIELDS})

    @property
    def key(self) -> str:
        return trial_key(self.to_dict())

    @property
    def total_flops(self) -> float:
        return self.flops_per_step * self.steps

    @property
    def equivariant(self) -> bool:
        """The family's declared symmetry (not part of the config: it does not change the key)."""
        from equisweep.models import get_family

        return bool(get_family(self.family).equivariant)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrialConfig:
        """Rebuild from a trial dict (e.g. the store's `config` column); recomputes the cost."""
        from equisweep.models import count_params, validate_size
        from equisweep.task import TaskConfig

        missing = [k for k in CONFIG_FIELDS if k not in d]
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
            flops_per_step=step_flops(d["family"], size, task, training["batch_size"]),
        )


def step_flops(family, size, task, batch_size) -> float:
    from equisweep.models import count_flops

    return float(count_flops(family, size, tokens=task.max_tokens(), batch_size=batch_size))
