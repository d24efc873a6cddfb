"""The GATr net for the rigid-body task: embedding, blocks, readout, and its counts.

Size dict (defaults filled by `validate_size("gatr", size)`, see models/gatr/__init__.py):
  width    multivector channels (>= 2); half of them (rounded down) are of the det kind
           that carries points, see linear.py
  depth    number of blocks (>= 1)
  scalars  scalar channels beside the multivectors (default 4 * width)
  heads    attention heads (default min(8, width // 2)); each head has
           max(2, 2 width // heads) multivector and max(4, 2 scalars // heads) scalar query
           channels; keys/values are shared by all heads (multi-query)
The GATr v1.4.3 configuration "16 mv / 64 scalar channels, 4 blocks" is
{"width": 16, "scalars": 64, "depth": 4}.

Tokens are mesh vertices. Per token the network sees the points x0, x1, c0, c1 (det kind),
the floor plane (through floor_point, normal up), `up` and the displacements x1 - x0,
c1 - c0, x1 - c1 as translations (rho kind), and invariant scalars (heights above the
floor, displacement lengths). Body identity enters only through a learned per-head
attention bias between tokens of the same body, so relabelling bodies changes nothing.
The prediction is x1 + d with d = p - w x1 read from the trivector part (p, w = e123) of a
det-kind output channel: if that channel is the point y, d = y - x1; in general d is
translation invariant and moves with R, so model(g . batch) = g . model(batch) exactly for
every g in E(3), and no division by w is needed. (Like GATr, no norm before the readout.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from equisweep.models.gatr.attention import (
    GeometricAttention,
    attention_flops,
    attention_params,
)
from equisweep.models.gatr.bilinear import GeometricMLP, mlp_flops, mlp_params
from equisweep.models.gatr.linear import EquiLinear, Layout, equi_flops, equi_params
from equisweep.models.gatr.nonlinearity import equi_layer_norm
from equisweep.models.masks import keep_real, same_body
from equisweep.models.pga.embed import embed_plane, embed_point, embed_translation
from equisweep.models.scene import Scene

INPUT = Layout(5, 4, 8)  # plane, up, 3 translations | 8 invariants | x0, x1, c0, c1
OUTPUT = Layout(0, 1, 0)  # one det-kind channel: a homogeneous point w e123 + ...


def default_heads(width: int) -> int:
    """8 heads (GATr's default) once each has 2 multivector channels; fewer below."""
    return min(8, max(1, width // 2))


@dataclass(frozen=True)
class GATrDims:
    width: int
    depth: int
    scalars: int
    heads: int

    @property
    def layout(self) -> Layout:
        return Layout(self.width - self.width // 2, self.width // 2, self.scalars)

    @property
    def hidden_mv(self) -> int:
        return max(2, 2 * self.width // self.heads)

    @property
    def hidden_s(self) -> int:
        return max(4, 2 * self.scalars // self.heads)

    @property
    def mlp_groups(self) -> int:
        return max(1, self.width // 4)

    @classmethod
    def of(cls, size: dict) -> GATrDims:
        return cls(int(size["width"]), int(size["depth"]), int(size["scalars"]),
                   int(size["heads"]))


class GATrBlock(nn.Module):
    def __init__(self, dims: GATrDims):
        super().__init__()
        self.layout = dims.layout
        gain = 1.0 / math.sqrt(2.0 * dims.depth)
        self.attention = GeometricAttention(self.layout, dims.heads, dims.hidden_mv,
                                            dims.hidden_s, out_gain=gain)
        self.mlp = GeometricMLP(self.layout, dims.mlp_groups, out_gain=gain)

    def forward(self, h, key_ok, same):
        h = h + self.attention(equi_layer_norm(h, self.layout), key_ok, same)
        return h + self.mlp(equi_layer_norm(h, self.layout))


class GATr(nn.Module):
    """The task model: batch dict (DESIGN section 10) -> predicted positions (B, V, 3)."""

    def __init__(self, size: dict):
        super().__init__()
        self.dims = GATrDims.of(size)
        layout = self.dims.layout
        self.inp = EquiLinear(INPUT, layout)
        self.blocks = nn.ModuleList(GATrBlock(self.dims) for _ in range(self.dims.depth))
        self.out = EquiLinear(layout, OUTPUT, gain=0.1)

    @staticmethod
    def embed(sc: Scene) -> torch.Tensor:
        e = torch.stack([embed_plane(sc.up, sc.floor), embed_translation(sc.up),
                         embed_translation(sc.x1 - sc.x0), embed_translation(sc.c1 - sc.c0),
                         embed_translation(sc.x1 - sc.c1)], -2)
        o = torch.stack([embed_point(p) for p in (sc.x0, sc.x1, sc.c0, sc.c1)], -2)
        s = torch.stack([sc.height(sc.x1), sc.height(sc.x0), sc.height(sc.c1),
                         sc.height(sc.c0), (sc.x1 - sc.x0).norm(dim=-1),
                         (sc.c1 - sc.c0).norm(dim=-1), (sc.x1 - sc.c1).norm(dim=-1),
                         sc.along_up(sc.x1 - sc.x0)], -1)
        return INPUT.join(e, s, o)

    def forward(self, batch: dict) -> torch.Tensor:
        sc = Scene.of(batch)
        mask, same = batch["mask"], same_body(batch)
        h = self.inp(self.embed(sc))
        for block in self.blocks:
            h = block(h, mask, same)
        return keep_real(sc.x1 + point_offset(self.out(h), sc.x1), mask)


def point_offset(mv: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """p - w origin for the trivector part (p, w = e123) of a det-kind multivector: the
    displacement from `origin` to the point p / w, times w, with no division. It is
    translation invariant and moves with R under every g in E(3); for mv = point(y) it is
    y - origin."""
    coords = torch.stack([-mv[..., 13], mv[..., 12], -mv[..., 11]], -1)
    return coords - mv[..., 14:15] * origin


def gatr_params(size: dict) -> int:
    """Exact trainable parameters of GATr(size)."""
    d = GATrDims.of(size)
    L = d.layout
    block = (attention_params(L, d.heads, d.hidden_mv, d.hidden_s)
             + mlp_params(L, d.mlp_groups))
    return equi_params(INPUT, L) + d.depth * block + equi_params(L, OUTPUT)


def gatr_flops(size: dict, tokens: int, batch_size: int) -> int:
    """Training FLOPs of one step on batch_size scenes of `tokens` tokens."""
    d = GATrDims.of(size)
    L, n = d.layout, tokens * batch_size
    block = (attention_flops(L, d.heads, d.hidden_mv, d.hidden_s, tokens, batch_size)
             + mlp_flops(L, d.mlp_groups, n))
    return (equi_flops(INPUT, L, n, input_grad=False) + d.depth * block
            + equi_flops(L, OUTPUT, n))
