"""GATr, the equivariant family, as a layered package in the spirit of the reference
implementation: linear (typed token state, EquiLinear), bilinear (geometric product, join,
GeometricMLP), nonlinearity (equivariant layer norm, gated GELU), attention, and the net.
Each layer keeps its parameter and FLOP counts beside it; FAMILY declares the family.

Size keys (see net.py): width, depth (required), scalars (default 4 * width), heads
(default min(8, width // 2)).
"""

from __future__ import annotations

from equisweep.errors import UserError
from equisweep.models import nominal
from equisweep.models.family import Family
from equisweep.models.gatr.net import GATr, default_heads, gatr_flops, gatr_params


def _derive(size: dict) -> None:
    size.setdefault("scalars", 4 * size["width"])
    size.setdefault("heads", default_heads(size["width"]))


def _check(size: dict) -> None:
    if size["width"] < 2:  # one channel of each kind (rho for planes, det for points)
        raise UserError(f"gatr size: 'width' must be at least 2, got {size['width']}")


FAMILY = Family(
    "gatr",
    size_keys={"width": None, "depth": None, "scalars": None, "heads": None},
    positive=frozenset({"width", "depth", "scalars", "heads"}),
    ladder=({"width": 2, "depth": 1, "scalars": 4}, {"width": 4, "depth": 1},
            {"width": 8, "depth": 2}, {"width": 16, "depth": 3},
            {"width": 16, "depth": 4, "scalars": 64}, {"width": 32, "depth": 4},
            {"width": 48, "depth": 6}, {"width": 64, "depth": 8},
            {"width": 96, "depth": 10}, {"width": 128, "depth": 12}),
    model=GATr, params=gatr_params, flops=gatr_flops, nominal=nominal.gatr,
    derive=_derive, check=_check,
    equivariant=True, group="E(3)",
)

__all__ = ["FAMILY", "GATr"]
