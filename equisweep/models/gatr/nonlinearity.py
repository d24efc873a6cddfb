"""GATr's equivariant layer norm and scalar-gated GELU (no parameters, no counted FLOPs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from equisweep.models.gatr.linear import Layout
from equisweep.models.pga.algebra import E0123, tables


def equi_layer_norm(h: torch.Tensor, layout: Layout, eps: float = 0.01) -> torch.Tensor:
    """x / sqrt(mean over mv channels of <x, x>) on both kinds; plain layer norm on scalars."""
    e, s, o = layout.split(h)
    inner = tables(h.device, h.dtype).inner
    sq = (e * e * inner).sum((-1, -2)) + (o * o * inner).sum((-1, -2))
    scale = torch.rsqrt((sq / max(layout.ce + layout.co, 1)).clamp(min=eps))[..., None, None]
    s = F.layer_norm(s, s.shape[-1:]) if layout.ns else s
    return layout.join(e * scale, s, o * scale)


def gated_gelu(e: torch.Tensor, o: torch.Tensor):
    """Scale each multivector by GELU of an invariant of it: the scalar part of the rho kind,
    the pseudoscalar part of the det kind (both invariant under their action)."""
    ge = F.gelu(e[..., :1], approximate="tanh") * e
    go = F.gelu(o[..., E0123:E0123 + 1], approximate="tanh") * o
    return ge, go
