"""Training compute really spent by a WSD sweep: the FLOPs a branch shares with its trunk."""

from __future__ import annotations

import math

import pyarrow as pa


def flops_at_forks(keys, raw: pa.Table, fork_at: dict) -> dict[str, float]:
    """Branch key -> its cumulative FLOPs at its fork step, from the rows either side."""
    below: dict[str, tuple[int, float]] = {}  # last (step, flops) at or before the fork
    above: dict[str, tuple[int, float]] = {}  # first (step, flops) after it
    for k, st, fl in zip(keys.to_pylist(), raw.column("step").to_pylist(),
                         raw.column("flops").to_pylist()):
        f = fork_at.get(k)
        if f is None or fl is None:
            continue
        if st <= f and st >= below.get(k, (0, 0.0))[0]:
            below[k] = (st, fl)
        elif st > f and st < above.get(k, (math.inf, 0.0))[0]:
            above[k] = (st, fl)
    out = {}
    for k, f in fork_at.items():
        s1, f1 = below.get(k, (0, 0.0))
        if k in above:
            s2, f2 = above[k]
            out[k] = f1 + (f2 - f1) * (f - s1) / (s2 - s1)
        elif k in below:
            out[k] = f1  # nothing past the fork yet: all it has is shared
    return out
