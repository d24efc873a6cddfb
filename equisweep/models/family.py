"""What a model family declares: the one contract a family module fulfils to plug in.

A family module (models/gatr/, models/transformer.py, models/egnn.py) builds one `Family`
named FAMILY; the registry lists them, one line each. Everything else (size validation,
spec expansion, FLOP budgets, the equivariance tests, the benchmark) reads the declaration
and never the family's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for the annotation: this module stays importable without torch
    from torch import nn


def _no_check(size: dict) -> None:
    return None


def _no_defaults(size: dict) -> None:
    return None


@dataclass(frozen=True)
class Family:
    """One model family.

    size_keys   allowed size keys -> default; a bool default makes the key a flag, an int
                default an integer key, None a key that is required (`required`) or filled
                by `derive` from the others
    required    keys a size must give
    positive    integer keys that must be >= 1 (every other integer key must be >= 0)
    ladder      sizes from small to large, spanning decades of parameters (default sweeps)
    model       normalised size -> nn.Module taking the batch dict (DESIGN section 10)
    params      normalised size -> exact trainable parameter count, from the formula
    flops       (normalised size, tokens, batch_size) -> training FLOPs of one step
                (forward + backward of every matmul, DESIGN section 5)
    nominal     (normalised size, tokens, batch_size) -> training FLOPs of one step under
                GATr v1.4's nominal convention (DESIGN section 5); a function of
                models/nominal.py, which analysis can import without torch
    derive      fills the defaults that depend on other keys (in place)
    check       raises UserError for sizes the keys allow but the model cannot build
    equivariant whether model(g . batch) == g . model(batch) exactly for every g in `group`
    group       the symmetry group it respects by construction ("E(3)"), None if none
    """

    name: str
    size_keys: Mapping[str, object]
    ladder: tuple[dict, ...]
    model: Callable[[dict], nn.Module]
    params: Callable[[dict], int]
    flops: Callable[[dict, int, int], int]
    nominal: Callable[[dict, int, int], int] | None = field(repr=False, default=None)
    required: tuple[str, ...] = ("width", "depth")
    positive: frozenset[str] = frozenset({"width", "depth"})
    derive: Callable[[dict], None] = field(repr=False, default=_no_defaults)
    check: Callable[[dict], None] = field(repr=False, default=_no_check)
    equivariant: bool = False
    group: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "size_keys", MappingProxyType(dict(self.size_keys)))
        object.__setattr__(self, "ladder", tuple(dict(s) for s in self.ladder))
        unknown = set(self.required) | set(self.positive)
        if not unknown <= set(self.size_keys):
            raise ValueError(f"family {self.name}: required/positive keys "
                             f"{sorted(unknown - set(self.size_keys))} are not size keys")
        if self.equivariant != (self.group is not None):
            raise ValueError(f"family {self.name}: an equivariant family names its group, "
                             "and only an equivariant one does")


def registry_of(*families: Family) -> Mapping[str, Family]:
    """The read-only name -> Family map, in the order given (names must be unique)."""
    out: dict[str, Family] = {}
    for fam in families:
        if fam.name in out:
            raise ValueError(f"model family {fam.name!r} is registered twice")
        out[fam.name] = fam
    return MappingProxyType(out)
