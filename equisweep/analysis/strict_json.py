"""Strict JSON for every file and stdout stream analysis writes (fits.json, `fit --json`).

Python's json writes NaN and Infinity as bare tokens that strict parsers (JavaScript's
JSON.parse, jq, most other languages) reject; with allow_nan=False it raises instead, which
would turn one undetermined number into a crash. A number that is not finite is not a
measurement, so it is written as null, the value every reader already takes as "not
determined".
"""

from __future__ import annotations

import json
import math
import numbers


def finite_or_none(obj):
    """obj with every non-finite float (numpy's too) replaced by None, containers copied."""
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    if isinstance(obj, numbers.Real) and not isinstance(obj, (bool, numbers.Integral)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, numbers.Integral) and not isinstance(obj, bool):
        return int(obj)
    return obj


def dumps(obj, **kwargs) -> str:
    """json.dumps that never writes NaN or Infinity (see the module docstring)."""
    return json.dumps(finite_or_none(obj), allow_nan=False, **kwargs)
