"""The registry of model families (one line each) and the API that reads it: size
validation, builders and their counts. A family plugs in by declaring a `Family`
(models/family.py) in its own module and adding it to FAMILIES below."""

from __future__ import annotations

import numbers
from collections.abc import Mapping

import torch
from torch import nn

from equisweep.errors import UserError
from equisweep.models import egnn, gatr, transformer
from equisweep.models.family import Family, registry_of

FAMILIES: Mapping[str, Family] = registry_of(gatr.FAMILY, transformer.FAMILY, egnn.FAMILY)


def get_family(name) -> Family:
    if name not in FAMILIES:
        raise UserError(f"unknown model family {name!r}; known families: "
                        f"{', '.join(sorted(FAMILIES))}")
    return FAMILIES[name]


def _integer(fam: Family, key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != int(value):
        raise UserError(f"{fam.name} size: {key!r} must be an integer, got {value!r}")
    value = int(value)
    if key in fam.positive and value < 1:
        raise UserError(f"{fam.name} size: {key!r} must be positive, got {value}")
    if value < 0:
        raise UserError(f"{fam.name} size: {key!r} must not be negative, got {value}")
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
                out[key] = _integer(fam, key, value)
        elif default is not None:
            out[key] = default
        elif key in fam.required:
            raise UserError(f"{family} size: missing required key {key!r}")
    fam.derive(out)
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
