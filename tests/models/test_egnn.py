"""EGNN's own choices: edge tensors computed a few scenes at a time give the same
predictions and gradients as all at once."""

from __future__ import annotations

import torch

from equisweep.models import build_model, egnn
from tests.helpers.batches import make_batch


def test_chunked_edges_equal_one_chunk(monkeypatch):
    batch = make_batch(B=5, V=11, dtype=torch.float64, seed=7)

    def run():
        torch.manual_seed(0)
        model = build_model("egnn", {"width": 16, "depth": 2}, dtype=torch.float64)
        out = model(batch)
        ((out - batch["y"]) ** 2).sum().backward()
        return out.detach(), [p.grad.clone() for p in model.parameters()]

    whole, g_whole = run()
    monkeypatch.setattr(egnn, "_CHUNK_BYTES", 2 * 11 * 11 * 16 * 8)  # two scenes a chunk
    chunked, g_chunked = run()
    assert torch.allclose(whole, chunked, rtol=1e-12, atol=1e-12)
    for a, b in zip(g_whole, g_chunked):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)
