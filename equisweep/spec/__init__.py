"""Sweep files: YAML -> validated `SweepSpec` -> grid cells -> trial configs with a stable key.

The schema is DESIGN §6. The package's modules, one job each:

- `identity`: canonical JSON of a config and the trial key hashed from it;
- `trials`: `Cell` (a grid point and its FLOPs) and `TrialConfig` (what a trainer receives);
- `sweep_spec`: `SweepSpec`, expanding a sweep to cells, trials and a search space;
- `budget`: the `budget.flops` cut;
- `hparams`: searchable hyperparameters, their defaults and domains, `training:`/`search:`;
- `load`: safe YAML reading; `parse`: validation of the whole mapping; `check`: the problem
  collector both use, so that every problem in a file is reported at once (`SpecError`).

The trial dict (DESIGN §7's `config` column) always carries all six hparams; `training.warmup`
in it equals `hparams.warmup`, so the two can never disagree.
"""

from equisweep.spec.budget import apply_budget
from equisweep.spec.check import SpecError
from equisweep.spec.hparams import HPARAM_DEFAULTS, TRAINING_DEFAULTS, Param, SearchSpec
from equisweep.spec.identity import canonical, trial_key
from equisweep.spec.load import load_spec, read_yaml
from equisweep.spec.parse import parse_spec
from equisweep.spec.sweep_spec import FamilySpec, GridSpec, SweepSpec
from equisweep.spec.trials import Cell, TrialConfig

__all__ = [
    "HPARAM_DEFAULTS",
    "TRAINING_DEFAULTS",
    "Cell",
    "FamilySpec",
    "GridSpec",
    "Param",
    "SearchSpec",
    "SpecError",
    "SweepSpec",
    "TrialConfig",
    "apply_budget",
    "canonical",
    "load_spec",
    "parse_spec",
    "read_yaml",
    "trial_key",
]
