"""Random rigid-body batches in the contract of DESIGN section 10, for model tests."""

from __future__ import annotations

import torch

POINTS = ("x0", "x1", "c0", "c1", "y")


def make_batch(B: int = 3, V: int = 18, dtype=torch.float64, seed: int = 0,
               bodies: int = 3) -> dict:
    """Scenes of `bodies` bodies; scene b has V - 3 b real tokens (the rest is padding),
    a random floor point and a random unit `up` (so no axis is special)."""
    g = torch.Generator().manual_seed(seed)
    body = torch.randint(0, bodies, (B, V), generator=g)
    centre0 = torch.randn(B, bodies, 3, generator=g, dtype=dtype)
    centre1 = centre0 + 0.1 * torch.randn(B, bodies, 3, generator=g, dtype=dtype)
    pick = body[..., None].expand(B, V, 3)
    c0, c1 = centre0.gather(1, pick), centre1.gather(1, pick)
    offset = 0.3 * torch.randn(B, V, 3, generator=g, dtype=dtype)
    x0 = c0 + offset
    x1 = c1 + offset + 0.05 * torch.randn(B, V, 3, generator=g, dtype=dtype)
    mask = torch.arange(V)[None, :] < (V - 3 * torch.arange(B))[:, None]
    up = torch.nn.functional.normalize(torch.randn(B, 3, generator=g, dtype=dtype), dim=-1)
    batch = dict(x0=x0, x1=x1, c0=c0, c1=c1, y=x1 + 0.1 * (x1 - x0),
                 body=torch.where(mask, body, -1), mask=mask,
                 floor_point=torch.randn(B, 3, generator=g, dtype=dtype), up=up)
    for k in POINTS:
        batch[k] = batch[k] * mask[..., None]
    return batch
