"""Equivariance test helpers: random rigid-body batches (DESIGN section 10) and a local E(3)
action on them, independent of equisweep.task so the two are checked against each other."""

from __future__ import annotations

import torch

POINTS = ("x0", "x1", "c0", "c1", "y")


def make_batch(B: int = 3, V: int = 18, dtype=torch.float64, seed: int = 0,
               bodies: int = 3) -> dict:
    """Scenes of `bodies` bodies; scene b has V - 3 b real tokens (the rest is padding)."""
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


def random_e3(B: int, dtype=torch.float64, seed: int = 1):
    """Haar-random R in O(3) (reflections forced on the odd scenes) and Gaussian t."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(B, 3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    want = torch.tensor([1.0 if b % 2 == 0 else -1.0 for b in range(B)], dtype=torch.float64)
    q[:, :, 0] *= (torch.linalg.det(q) * want)[:, None]
    t = torch.randn(B, 3, generator=g, dtype=torch.float64)
    return q.to(dtype), t.to(dtype)


def act_rt(batch: dict, R: torch.Tensor, t: torch.Tensor) -> dict:
    out = dict(batch)
    for k in POINTS:
        out[k] = torch.einsum("bij,bvj->bvi", R, batch[k]) + t[:, None, :]
    out["floor_point"] = torch.einsum("bij,bj->bi", R, batch["floor_point"]) + t
    out["up"] = torch.einsum("bij,bj->bi", R, batch["up"])
    return out


def move_points(points: torch.Tensor, R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bij,bvj->bvi", R, points) + t[:, None, :]


def masked_rel_error(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> float:
    m = mask[..., None]
    return float(((a - b) * m).norm() / (b * m).norm())
