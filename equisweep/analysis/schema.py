"""The typed schema of fits.json's Approach 3 blocks (what the report, the console and
downstream readers rely on), with a checker that the tests run on every fits.json they make.

Only the keys listed here are guaranteed; blocks may carry more (data, diagnostics detail).
"""

from __future__ import annotations

import types
import typing
from typing import Literal, TypedDict

Status = Literal["ok", "weak", "undetermined"]


class Estimate(TypedDict):
    value: float | None
    se: float | None
    ci: list[float] | None


class LongestLength(TypedDict):
    S: float
    error: float | None
    n_points: int


class SizeError(TypedDict):
    N: float
    error: float | None
    n_points: int


class InteriorSizes(TypedDict):
    error: float | None
    per_size: list[SizeError]


class HeldOut(TypedDict):
    longest_length: LongestLength
    interior_sizes: InteriorSizes
    error: float | None
    metric: str


class Diagnostic(TypedDict):
    code: str
    severity: Literal["weak", "undetermined", "note"]
    message: str


class FormBlock(TypedDict):
    status: Status
    diagnostics: list[Diagnostic]
    reason: str | None
    notes: list[str]
    form: str
    source: str
    n_params: int
    held_out: HeldOut
    coefficients: dict[str, Estimate]
    objective: float
    n_starts: int
    bootstrap_ok: int


class Selection(TypedDict):
    rule: str
    why: str
    held_out_error: dict[str, float | None]


class Approach3(TypedDict):
    status: Status
    diagnostics: list[Diagnostic]
    reason: str | None
    notes: list[str]
    primary_form: str
    selection: Selection
    form: str
    resampling: str
    coefficients: dict[str, Estimate]
    forms: dict[str, FormBlock]


def check(value, kind=Approach3, where="approach3") -> None:
    """Raise TypeError naming the first path in `value` that does not match `kind`."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if isinstance(kind, type) and typing.is_typeddict(kind):
        if not isinstance(value, dict):
            raise TypeError(f"{where}: expected an object, got {type(value).__name__}")
        for key, sub in typing.get_type_hints(kind).items():
            if key not in value:
                raise TypeError(f"{where}: missing key {key!r}")
            check(value[key], sub, f"{where}.{key}")
    elif origin is Literal:
        if value not in args:
            raise TypeError(f"{where}: {value!r} is not one of {args}")
    elif origin in (typing.Union, types.UnionType):
        errors = []
        for a in args:
            try:
                return check(value, a, where)
            except TypeError as err:
                errors.append(str(err))
        raise TypeError(errors[0])
    elif origin is list:
        if not isinstance(value, list):
            raise TypeError(f"{where}: expected a list")
        for i, v in enumerate(value):
            check(v, args[0], f"{where}[{i}]")
    elif origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"{where}: expected an object")
        for k, v in value.items():
            check(v, args[1], f"{where}.{k}")
    elif kind is type(None):
        if value is not None:
            raise TypeError(f"{where}: expected null")
    elif kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{where}: expected a number, got {value!r}")
    elif not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{where}: expected {kind.__name__}, got {value!r}")
