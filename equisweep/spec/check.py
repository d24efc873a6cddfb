"""The check framework of sweep-file validation: every problem is collected, then reported once.

A parser calls `Check` methods; each returns the cleaned value, or `BAD` after recording a
problem that starts with its field path (`grid.steps[1]: ...`). `SpecError` joins them.
"""

from __future__ import annotations

import difflib
import json
import math
import numbers
from collections.abc import Iterable
from typing import Any

from equisweep.errors import UserError


class SpecError(UserError):
    """A sweep file with problems; `.problems` lists each (field path first)."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = list(problems)
        super().__init__(f"{source}: " + "; ".join(self.problems))


# validation helpers: each returns the cleaned value, or BAD after recording a problem

BAD: Any = object()


def type_word(v: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(v), type(v).__name__
    )


def show(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (dict, list)):
        s = json.dumps(v, default=str)
        return s if len(s) <= 60 else s[:57] + "..."
    return repr(v)


# Keys older sweep files may still carry: what replaced them, instead of "unknown key".
REMOVED = {
    "training.eval_batches": "removed: every trial is evaluated on its dataset's fixed "
                             "val/test windows (sized by task.val_trajectories and "
                             "task.test_trajectories); delete this key",
}


def unknown(key: Any, allowed: Iterable[str], what: str = "unknown key") -> str:
    allowed = list(allowed)
    hint = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    msg = what + (f" (did you mean {hint[0]!r}?)" if hint else "")
    return f"{msg}; allowed: {', '.join(allowed)}"


def join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def is_int(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, numbers.Integral):
        return True
    # YAML `steps: 1e5` is a float; accept it when it is a whole number.
    return isinstance(v, float) and math.isfinite(v) and v.is_integer()


def is_number(v: Any) -> bool:
    return not isinstance(v, bool) and isinstance(v, numbers.Real) and math.isfinite(float(v))


class Check:
    def __init__(self):
        self.problems: list[str] = []

    def add(self, path: str, msg: str) -> Any:
        self.problems.append(f"{path}: {msg}" if path else msg)
        return BAD

    def mapping(self, v, path, allowed, required=()) -> dict | Any:
        if not isinstance(v, dict):
            return self.add(path, f"must be a mapping, got {show(v)}")
        for k in v:
            if join(path, k) in REMOVED:
                self.add(join(path, k), REMOVED[join(path, k)])
            elif k not in allowed:
                self.add(join(path, k), unknown(k, allowed))
        for k in required:
            if k not in v:
                self.add(join(path, k), "required")
        return v

    def integer(self, v, path, minimum=1) -> int | Any:
        if not is_int(v) or v < minimum:
            word = {1: "a positive integer", 0: "a non-negative integer"}.get(
                minimum, f"an integer >= {minimum}"
            )
            return self.add(path, f"must be {word}, got {show(v)}")
        if not -(2**63) <= int(v) < 2**63:  # `1e30` is integral, but no int64 column holds it
            return self.add(path, f"must fit a 64-bit integer, got {show(v)}")
        return int(v)

    def number(self, v, path, what, ok) -> float | Any:
        if not is_number(v) or not ok(v):
            return self.add(path, f"must be {what}, got {show(v)}")
        return v

    def one_of(self, v, path, allowed) -> str | Any:
        if not isinstance(v, str) or v not in allowed:
            hint = difflib.get_close_matches(str(v), allowed, n=1, cutoff=0.6)
            tail = f" (did you mean {hint[0]!r}?)" if hint else ""
            return self.add(path, f"must be one of {', '.join(allowed)}, got {show(v)}{tail}")
        return v

    def int_list(self, v, path, minimum=1) -> list | Any:
        """A list of distinct integers; a single integer is a list of one."""
        if not isinstance(v, list):
            v = self.integer(v, path, minimum)
            return BAD if v is BAD else [v]
        if not v:
            return self.add(path, "must be a non-empty list")
        out, seen = [], {}
        for i, x in enumerate(v):
            x = self.integer(x, f"{path}[{i}]", minimum)
            if x is BAD:
                continue
            if x in seen:
                self.add(f"{path}[{i}]", f"duplicate of {path}[{seen[x]}] ({x})")
                continue
            seen[x] = i
            out.append(x)
        return out if len(out) == len(v) else BAD
