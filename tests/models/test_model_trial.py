"""Every registered family runs in a sweep: the spec accepts it (augmentation only where it
is not equivariant), and a real short trial trains it on the task's data end to end."""

from __future__ import annotations

import math

import pytest

from equisweep import train
from equisweep.errors import UserError
from equisweep.models import FAMILIES
from equisweep.spec import parse_spec
from tests.helpers.families import ALL
from tests.sweep.conftest import tiny_sweep_dict


def _spec(family: str, **entry):
    families = {family: {"sizes": [dict(FAMILIES[family].ladder[0])], **entry}}
    tiny = tiny_sweep_dict()
    return parse_spec(tiny_sweep_dict(
        families=families, training={**tiny["training"], "eval_every": 5},
        grid={**tiny["grid"], "steps": [10]}))


@pytest.mark.parametrize("family", ALL)
def test_family_runs_a_short_trial(family):
    spec = _spec(family)
    (cell,) = spec.cells()
    rows = train.run_trial(spec.cell_trial(cell, {"lr": 3e-3}).to_dict())
    assert [r["step"] for r in rows] == [5, 10]
    assert rows[-1]["status"] == "finished"
    assert all(math.isfinite(r["train_loss"]) and r["flops"] > 0 for r in rows)
    assert math.isfinite(rows[-1]["test_loss"]) and rows[-1]["test_loss"] > 0
    errors = [r["equivariance_error"] for r in rows]
    if FAMILIES[family].equivariant:  # float32 training, the task's own group
        assert all(e < 1e-3 for e in errors), errors
    else:
        assert all(e > 1e-3 for e in errors), errors


@pytest.mark.parametrize("family", ALL)
def test_augmentation_only_for_non_equivariant_families(family):
    if FAMILIES[family].equivariant:
        with pytest.raises(UserError, match="equivariant"):
            _spec(family, augment=True)
    else:
        assert {c.augment for c in _spec(family, augment=[False, True]).cells()} == {
            False, True}
