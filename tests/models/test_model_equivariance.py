"""Whole task models under E(3), for every family in the registry: those that declare
equivariance commute with it (reflections included, floor and up moving with the scene) in
float64 to 1e-9 and float32 to 1e-4; those that do not declare it are measurably not
equivariant (so the declaration is honest both ways)."""

from __future__ import annotations

import pytest
import torch

from equisweep.models import FAMILIES, build_model
from tests.helpers.batches import make_batch
from tests.helpers.equivariance import TOL, e3_elements, model_error, pin_as_e3
from tests.helpers.families import EQUIVARIANT, NOT_EQUIVARIANT, one_size

DTYPES = pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])


def test_every_declared_group_is_one_the_checker_knows():
    for fam in FAMILIES.values():
        assert fam.group in (None, "E(3)"), f"{fam.name}: no equivariance test for {fam.group}"


@DTYPES
@pytest.mark.parametrize("family", EQUIVARIANT)
def test_is_e3_equivariant(family, dtype):
    torch.manual_seed(0)
    model = build_model(family, one_size(family), dtype=dtype)
    batch = make_batch(B=4, V=16, dtype=dtype)
    R, t = e3_elements(4, dtype=dtype)
    assert (torch.linalg.det(R) < 0).any() and (torch.linalg.det(R) > 0).any()
    assert model_error(model, batch, R, t) < TOL[dtype]


@DTYPES
@pytest.mark.parametrize("family", EQUIVARIANT)
def test_is_equivariant_under_pin_elements(family, dtype):
    """Random Pin(3,0,1) versors, through the E(3) element each one acts as."""
    torch.manual_seed(1)
    model = build_model(family, one_size(family), dtype=dtype)
    batch = make_batch(B=4, V=16, dtype=dtype, seed=3)
    R, t = pin_as_e3(4, dtype=dtype, seed=5)
    assert model_error(model, batch, R, t) < TOL[dtype]


@pytest.mark.parametrize("family", NOT_EQUIVARIANT)
def test_untrained_non_equivariant_family_is_not_equivariant(family):
    torch.manual_seed(0)
    model = build_model(family, one_size(family), dtype=torch.float64)
    batch = make_batch(B=4, V=16, dtype=torch.float64)
    R, t = e3_elements(4)
    assert model_error(model, batch, R, t) > 1e-2
