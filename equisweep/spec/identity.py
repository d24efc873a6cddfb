"""A trial's identity: the canonical JSON form of a config and the key hashed from it.

Two configs that mean the same trial (`1e-3` vs `0.001`, `2.0` vs `2`, tuples vs lists) get the
same key, so resubmitting a sweep skips what is done (DESIGN §6).
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Mapping
from typing import Any


def canonical(obj: Any) -> Any:
    """The JSON value a config hashes as.

    Floats are rounded to 15 significant digits (so `0.1 + 0.2` and `0.3` agree, and YAML's
    `1e-3`, `0.001`, `1.0e-3` all do), integral floats become ints (`2.0` == `2`), -0.0 is 0;
    tuples become lists; numpy scalars become Python numbers. NaN/inf and non-string keys
    raise ValueError/TypeError: they have no canonical JSON.
    """
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if hasattr(obj, "item") and not isinstance(obj, (Mapping, list, tuple)):
        obj = obj.item()  # numpy scalar
        if isinstance(obj, bool):
            return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        f = float(obj)
        if not math.isfinite(f):
            raise ValueError(f"no canonical JSON for {f!r}")
        rounded = float(f"{f:.15g}")
        f = rounded if math.isfinite(rounded) else f  # near float max, rounding overflows
        if f.is_integer() and abs(f) < 2**53:
            return int(f)
        return f
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"config keys must be strings, got {k!r}")
            out[k] = canonical(v)
        return out
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    raise TypeError(f"no canonical JSON for {type(obj).__name__}: {obj!r}")


def trial_key(config: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of a config, first 16 hex."""
    blob = json.dumps(canonical(config), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
