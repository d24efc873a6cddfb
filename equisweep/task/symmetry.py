"""The task's symmetry group and E(3), sampled and acting on batches.

A group element g = (R, t) acts on points as p -> R p + t and on the direction `up` as
up -> R up. The task group keeps the floor and gravity fixed: rotations about `up`,
reflections in vertical planes and translations perpendicular to `up` (so `up` and the floor
height are unchanged). E(3) moves the floor and gravity with the scene; GATr must commute
with it, the task itself only with the task group.
"""

from __future__ import annotations

import math

import torch

POINT_KEYS = ("x0", "x1", "c0", "c1", "y")


def sample_task_group(batch: int, generator: torch.Generator | None = None,
                      dtype: torch.dtype = torch.float32, translation: float = 1.0,
                      up: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(R, t) of shapes (B, 3, 3), (B, 3): uniform angle about `up` (default +z), a
    reflection in a vertical plane with probability 1/2, and a Gaussian horizontal shift of
    scale `translation`. Pass `up` (B, 3) for batches whose gravity is not along -z."""
    angle = torch.rand(batch, generator=generator, dtype=torch.float64) * (2 * math.pi)
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(c), torch.ones_like(c)
    rot = torch.stack([c, -s, zero, s, c, zero, zero, zero, one], dim=1).reshape(batch, 3, 3)
    flip = torch.rand(batch, generator=generator, dtype=torch.float64) < 0.5
    rot[flip, :, 1] *= -1.0  # R diag(1, -1, 1): a reflection in a vertical plane
    shift = torch.randn(batch, 3, generator=generator, dtype=torch.float64) * translation
    shift[:, 2] = 0.0
    if up is not None:
        house = _householder_to(up.to(torch.float64).reshape(-1, 3).expand(batch, 3))
        rot = house @ rot @ house
        shift = torch.einsum("bij,bj->bi", house, shift)
    return rot.to(dtype), shift.to(dtype)


def sample_e3(batch: int, generator: torch.Generator | None = None,
              dtype: torch.dtype = torch.float32,
              translation: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Haar-random elements of O(3) (half of them reflections) and Gaussian translations."""
    gauss = torch.randn(batch, 3, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(gauss)
    # Fixing the signs of R's diagonal makes Q Haar-distributed on O(3).
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    shift = torch.randn(batch, 3, generator=generator, dtype=torch.float64) * translation
    return q.to(dtype), shift.to(dtype)


def act(batch: dict, rot: torch.Tensor, shift: torch.Tensor) -> dict:
    """g . batch: points (x0, x1, c0, c1, y, floor_point) -> R p + t, up -> R up.

    rot (B, 3, 3) or (3, 3), shift (B, 3) or (3,). Padded tokens stay zero. Other keys pass
    through unchanged. Returns a new dict; the input is not modified.
    """
    ref = batch["x0"]
    rot = rot.to(ref.dtype)
    shift = shift.to(ref.dtype)
    n = ref.shape[0]
    if rot.dim() == 2:
        rot = rot.expand(n, 3, 3)
    if shift.dim() == 1:
        shift = shift.expand(n, 3)
    out = dict(batch)
    mask = batch.get("mask")
    for key in POINT_KEYS:
        if key in batch:
            moved = torch.einsum("bij,bvj->bvi", rot, batch[key]) + shift[:, None, :]
            out[key] = moved * mask[..., None] if mask is not None else moved
    if "floor_point" in batch:
        out["floor_point"] = torch.einsum("bij,bj->bi", rot, batch["floor_point"]) + shift
    if "up" in batch:
        out["up"] = torch.einsum("bij,bj->bi", rot, batch["up"])
    return out


def _householder_to(up: torch.Tensor) -> torch.Tensor:
    """Reflections H (symmetric, H = H^-1) with H e_z = up/|up|."""
    u = up / up.norm(dim=-1, keepdim=True)
    ez = torch.zeros_like(u)
    ez[:, 2] = 1.0
    v = ez - u
    norm2 = (v * v).sum(-1, keepdim=True)
    eye = torch.eye(3, dtype=u.dtype).expand(len(u), 3, 3)
    safe = norm2.squeeze(-1) > 1e-24  # up == e_z already: identity
    h = eye - 2.0 * v[:, :, None] * v[:, None, :] / norm2.clamp_min(1e-24)[..., None]
    return torch.where(safe[:, None, None], h, eye)
