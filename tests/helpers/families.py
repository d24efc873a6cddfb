"""Sizes for family-generic tests, taken from each family's own ladder, so a new family is
tested by adding its registry line (tests are parametrised over FAMILIES)."""

from __future__ import annotations

from equisweep.models import FAMILIES, count_params

ALL = sorted(FAMILIES)
EQUIVARIANT = sorted(name for name, fam in FAMILIES.items() if fam.equivariant)
NOT_EQUIVARIANT = sorted(name for name, fam in FAMILIES.items() if not fam.equivariant)


def small_sizes(family: str, max_params: int = 40_000) -> list[dict]:
    """The family's ladder sizes up to max_params parameters (at least the smallest two)."""
    ladder = FAMILIES[family].ladder
    small = [dict(s) for s in ladder if count_params(family, s) <= max_params]
    return small if len(small) >= 2 else [dict(s) for s in ladder[:2]]


def one_size(family: str, min_params: int = 3_000) -> dict:
    """One small but non-trivial ladder size: the first with at least min_params and, where
    the family has a depth, at least two layers (so that stacking them is tested too)."""
    for size in FAMILIES[family].ladder:
        if count_params(family, size) >= min_params and size.get("depth", 2) >= 2:
            return dict(size)
    return dict(FAMILIES[family].ladder[-1])


def family_cases(max_params: int = 40_000) -> list[tuple[str, dict]]:
    return [(f, s) for f in ALL for s in small_sizes(f, max_params)]


def case_id(case) -> str:
    family, size = case
    return family + "-" + "-".join(f"{k}{v}" for k, v in size.items())
