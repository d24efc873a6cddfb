"""Whole task models under E(3): GATr commutes with it (reflections included), the
untrained transformer does not."""

from __future__ import annotations

import pytest
import torch

from equisweep.models import build_model, pga
from tests.helpers.equivariance import act_rt, make_batch, masked_rel_error, move_points, random_e3

TOL = {torch.float64: 1e-9, torch.float32: 1e-4}
GATR = {"width": 6, "depth": 2, "scalars": 8, "heads": 2}


def _check(model, batch, R, t):
    with torch.no_grad():
        pred = model(batch)
        moved = model(act_rt(batch, R, t))
    mask = batch["mask"]
    err = masked_rel_error(moved, move_points(pred, R, t) * mask[..., None], mask)
    # the displacement alone (a far smaller quantity than the positions) must rotate too
    d, dg = pred - batch["x1"], moved - act_rt(batch, R, t)["x1"]
    err_d = masked_rel_error(dg, torch.einsum("bij,bvj->bvi", R, d), mask)
    return max(err, err_d)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_gatr_is_e3_equivariant(dtype):
    torch.manual_seed(0)
    model = build_model("gatr", GATR, dtype=dtype)
    batch = make_batch(B=4, V=16, dtype=dtype)
    R, t = random_e3(4, dtype=dtype)
    assert (torch.linalg.det(R) < 0).any()
    assert _check(model, batch, R, t) < TOL[dtype]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_gatr_is_pin_equivariant(dtype):
    """Random Pin(3,0,1) elements, through the E(3) element each one acts as."""
    torch.manual_seed(1)
    model = build_model("gatr", GATR, dtype=dtype)
    batch = make_batch(B=4, V=16, dtype=dtype, seed=3)
    u, odd = pga.random_pin(4, torch.Generator().manual_seed(5))
    R, t = pga.rt_from_versor(u, odd)
    assert _check(model, batch, R.to(dtype), t.to(dtype)) < TOL[dtype]


def test_gatr_equivariance_with_task_symmetry_module():
    """The task builder's act() moves batches the same way (when it is present)."""
    symmetry = pytest.importorskip("equisweep.task.symmetry")
    torch.manual_seed(2)
    model = build_model("gatr", GATR, dtype=torch.float64)
    batch = make_batch(B=3, V=12, dtype=torch.float64, seed=4)
    R, t = symmetry.sample_e3(3, generator=torch.Generator().manual_seed(0),
                              dtype=torch.float64)
    with torch.no_grad():
        pred = model(batch)
        moved = model(symmetry.act(batch, R, t))
    expected = symmetry.act({"x0": pred, "mask": batch["mask"]}, R, t)["x0"]
    assert masked_rel_error(moved, expected, batch["mask"]) < 1e-9


@pytest.mark.parametrize("size", [{"width": 32, "depth": 2},
                                  {"width": 32, "depth": 2, "fourier": 8}])
def test_untrained_transformer_is_not_equivariant(size):
    torch.manual_seed(0)
    model = build_model("transformer", size, dtype=torch.float64)
    batch = make_batch(B=4, V=16, dtype=torch.float64)
    R, t = random_e3(4)
    assert _check(model, batch, R, t) > 1e-2
