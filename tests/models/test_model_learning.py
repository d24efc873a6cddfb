"""Every family learns a simple law of motion (x2 = 2 x1 - x0 - g): gradients flow through
every part that matters, and each family's readout can express it."""

from __future__ import annotations

import pytest
import torch

from equisweep.models import build_model
from tests.helpers.batches import make_batch
from tests.helpers.families import ALL, one_size


def _data(seed: int) -> dict:
    b = make_batch(B=4, V=16, dtype=torch.float32, seed=seed)
    m = b["mask"][..., None]
    b["y"] = (2 * b["x1"] - b["x0"] - 0.02 * b["up"][:, None, :]) * m
    return b


def _loss(model, b):
    m = b["mask"][..., None]
    return (((model(b) - b["y"]) ** 2) * m).sum() / m.sum()


@pytest.mark.parametrize("family", ALL)
def test_learns_constant_velocity(family):
    torch.manual_seed(0)
    model = build_model(family, one_size(family))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    held_out = _data(1000)
    with torch.no_grad():
        before = _loss(model, held_out).item()
    for step in range(120):
        loss = _loss(model, _data(step % 20))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = _loss(model, held_out).item()
    assert after < 0.3 * before, (before, after)
