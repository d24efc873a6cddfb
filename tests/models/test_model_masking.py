"""Padding, batch order, token order and body labels never change real predictions, for
every family in the registry."""

from __future__ import annotations

import pytest
import torch

from equisweep.models import build_model
from tests.helpers.batches import make_batch
from tests.helpers.families import ALL as FAMILIES
from tests.helpers.families import one_size


def model_of(family):
    """A float64 model whose zero-initialised parameters (biases, the same-body attention
    bias, ...) are random too, so that every input path matters."""
    torch.manual_seed(0)
    model = build_model(family, one_size(family), dtype=torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_()
    return model


def _take(batch, b, idx):
    out = {}
    for k, v in batch.items():
        v = v[b:b + 1]
        out[k] = v[:, idx] if v.dim() >= 2 and k not in ("floor_point", "up") else v
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_padding_values_never_matter(family):
    model = model_of(family)
    batch = make_batch(B=3, V=15, dtype=torch.float64)
    mask = batch["mask"]
    garbage = dict(batch)
    for k in ("x0", "x1", "c0", "c1", "y"):
        noise = 1e3 * torch.randn_like(batch[k])
        noise[2, -1] = float("nan")
        garbage[k] = torch.where(mask[..., None], batch[k], noise)
    garbage["body"] = torch.where(mask, batch["body"], 1)  # padding claims a real body
    with torch.no_grad():
        a, b = model(batch), model(garbage)
    m = mask[..., None]
    assert torch.isfinite(b).all()
    assert torch.allclose(a * m, b * m, atol=1e-12)
    # and equal to running each scene without any padding at all
    with torch.no_grad():
        for s in range(3):
            real = torch.nonzero(mask[s]).squeeze(-1)
            alone = model(_take(batch, s, real))
            assert torch.allclose(alone[0], a[s, real], atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_batch_order_and_token_permutation(family):
    model = model_of(family)
    batch = make_batch(B=3, V=15, dtype=torch.float64, seed=1)
    with torch.no_grad():
        base = model(batch)
        order = torch.tensor([2, 0, 1])
        shuffled = model({k: v[order] for k, v in batch.items()})
        assert torch.allclose(shuffled, base[order], atol=1e-12)
        perm = torch.randperm(15, generator=torch.Generator().manual_seed(0))
        tokens = {k: (v[:, perm] if k not in ("floor_point", "up") else v)
                  for k, v in batch.items()}
        assert torch.allclose(model(tokens), base[:, perm], atol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_body_labels_matter_only_up_to_relabelling(family):
    model = model_of(family)
    batch = make_batch(B=2, V=15, dtype=torch.float64, seed=2, bodies=3)
    relabel = torch.tensor([7, 2, 5])  # any injective relabelling
    body = batch["body"]
    renamed = dict(batch, body=torch.where(body >= 0, relabel[body.clamp(min=0)], -1))
    merged = dict(batch, body=torch.where(body >= 0, 0, -1))  # one body: different input
    with torch.no_grad():
        base = model(batch)
        assert torch.allclose(model(renamed), base, atol=1e-12)
        assert not torch.allclose(model(merged), base, atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_a_scene_of_one_token(family):
    """No neighbours, no other keys: still finite, and the same as that token alone."""
    model = model_of(family)
    batch = make_batch(B=2, V=5, dtype=torch.float64, seed=3)
    batch["mask"][0, 1:] = False
    batch["body"][0, 1:] = -1
    with torch.no_grad():
        out = model(batch)
        alone = model(_take(batch, 0, torch.tensor([0])))
    assert torch.isfinite(out).all()
    assert torch.allclose(out[0, :1], alone[0], atol=1e-12)
    assert torch.equal(out[0, 1:], torch.zeros_like(out[0, 1:]))
