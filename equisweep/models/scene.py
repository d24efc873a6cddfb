"""Per-token views of a scene shared by the families: the input points with padding zeroed,
the floor and `up` broadcast to every token, heights above the floor."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from equisweep.models.masks import real_points


@dataclass(frozen=True)
class Scene:
    """Tensors (B, V, 3): x0, x1, c0, c1 (zero on padding), up and floor (a floor point)."""

    x0: torch.Tensor
    x1: torch.Tensor
    c0: torch.Tensor
    c1: torch.Tensor
    up: torch.Tensor
    floor: torch.Tensor

    @classmethod
    def of(cls, batch: dict) -> Scene:
        pts = real_points(batch)
        shape = pts["x1"].shape
        return cls(pts["x0"], pts["x1"], pts["c0"], pts["c1"],
                   batch["up"][:, None, :].expand(shape),
                   batch["floor_point"][:, None, :].expand(shape))

    def height(self, p: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
        """Height of the points p above the floor, along `up` (invariant under E(3))."""
        return ((p - self.floor) * self.up).sum(-1, keepdim=keepdim)

    def along_up(self, v: torch.Tensor, keepdim: bool = False) -> torch.Tensor:
        """The vertical component v . up of the vectors v (invariant under E(3))."""
        return (v * self.up).sum(-1, keepdim=keepdim)
