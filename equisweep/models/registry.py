"""The model families: size validation, size ladders, builders and their counts."""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from equisweep.errors import UserError
from equisweep.models import flops, gatr, transformer

_POSITIVE = {"width", "depth", "scalars", "heads", "mlp_ratio"}


@dataclass(frozen=True)
class Family:
    name: str
    size_keys: dict  # allowed keys -> default (None: required or derived from width)
    ladder: list[dict]
    model: Callable[[dict], nn.Module]
    params: Callable[[dict], int]
    flops: Callable[[dict, int, int], int]
    check: Callable[[dict], None] = field(repr=False, default=lambda size: None)
    equivariant: bool = False  # whether the model is exactly equivariant under `group`
    group: str | None = None  # the symmetry group it respects by construction, e.g. "E(3)"


def _check_gatr(size: dict) -> None:
    if size["width"] < 2:
        raise UserError(f"gatr size: 'width' must be at least 2, got {size['width']}")


def _check_transformer(size: dict) -> None:
    if size["width"] % size["heads"]:
        raise UserError(f"transformer size: 'width' {size['width']} is not divisible by "
                        f"'heads' {size['heads']}")


def _gatr_defaults(size: dict) -> None:
    size.setdefault("scalars", 4 * size["width"])
    size.setdefault("heads", gatr.default_heads(size["width"]))


def _transformer_defaults(size: dict) -> None:
    size.setdefault("heads", transformer.default_heads(size["width"]))


_DEFAULTS = {"gatr": _gatr_defaults, "transformer": _transformer_defaults}

FAMILIES: dict[str, Family] = {
    "gatr": Family(
        "gatr", dict(gatr.SIZE_KEYS),
        ladder=[{"width": 2, "depth": 1, "scalars": 4}, {"width": 4, "depth": 1},
                {"width": 8, "depth": 2}, {"width": 16, "depth": 3},
                {"width": 16, "depth": 4, "scalars": 64}, {"width": 32, "depth": 4},
                {"width": 48, "depth": 6}, {"width": 64, "depth": 8},
                {"width": 96, "depth": 10}, {"width": 128, "depth": 12}],
        model=gatr.GATr, params=flops.gatr_params, flops=flops.gatr_flops,
        check=_check_gatr, equivariant=True, group="E(3)"),
    "transformer": Family(
        "transformer", dict(transformer.SIZE_KEYS),
        ladder=[{"width": 8, "depth": 1}, {"width": 16, "depth": 2}, {"width": 32, "depth": 2},
                {"width": 64, "depth": 3}, {"width": 128, "depth": 4},
                {"width": 192, "depth": 6}, {"width": 256, "depth": 8},
                {"width": 384, "depth": 10}, {"width": 512, "depth": 12},
                {"width": 768, "depth": 12}],
        model=transformer.Transformer, params=flops.transformer_params,
        flops=flops.transformer_flops, check=_check_transformer, equivariant=False,
        group=None),
}


def get_family(name) -> Family:
    if name not in FAMILIES:
        raise UserError(f"unknown model family {name!r}; known families: "
                        f"{', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def _integer(family: str, key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != int(value):
        raise UserError(f"{family} size: {key!r} must be an integer, got {value!r}")
    value = int(value)
    if key in _POSITIVE and value < 1:
        raise UserError(f"{family} size: {key!r} must be positive, got {value}")
    if value < 0:
        raise UserError(f"{family} size: {key!r} must not be negative, got {value}")
    return value


def validate_size(family: str, size) -> dict:
    """The normalised size dict (defaults filled, plain ints/bools); UserError naming the
    offending key otherwise."""
    fam = get_family(family)
    if not isinstance(size, Mapping):
        raise UserError(f"{family} size must be a mapping of size keys, got {size!r}")
    unknown = [k for k in size if k not in fam.size_keys]
    if unknown:
        raise UserError(f"{family} size: unknown key {unknown[0]!r}; allowed keys: "
                        f"{', '.join(fam.size_keys)}")
    out = {}
    for key, default in fam.size_keys.items():
        if key in size:
            value = size[key]
            if isinstance(default, bool):
                if type(value).__name__ not in ("bool", "bool_"):  # also numpy's bool
                    raise UserError(f"{family} size: {key!r} must be true or false, "
                                    f"got {value!r}")
                out[key] = bool(value)
            else:
                out[key] = _integer(family, key, value)
        elif default is not None:
            out[key] = default
        elif key in ("width", "depth"):
            raise UserError(f"{family} size: missing required key {key!r}")
    _DEFAULTS[family](out)
    fam.check(out)
    return {k: out[k] for k in fam.size_keys}


def build_model(family: str, size, dtype: torch.dtype | None = None) -> nn.Module:
    """The task model of `family` at `size` (validated), optionally cast to `dtype`."""
    norm = validate_size(family, size)
    model = get_family(family).model(norm)
    return model.to(dtype) if dtype is not None else model


def count_params(family: str, size) -> int:
    """Exact trainable parameter count, from the formula (no weights are built)."""
    return int(get_family(family).params(validate_size(family, size)))


def count_flops(family: str, size, tokens: int, batch_size: int) -> int:
    """Training FLOPs of one optimizer step on batch_size scenes of `tokens` (padded)
    vertex tokens: forward + backward of every matmul, attention included."""
    for name, value in (("tokens", tokens), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"count_flops: {name} must be a positive integer, got {value!r}")
    return int(get_family(family).flops(validate_size(family, size), tokens, batch_size))
