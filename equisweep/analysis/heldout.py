"""Judging a law form by the runs it has not seen, and choosing the primary form by it.

A law that fits its points well can still predict badly (a 6-parameter form fits the CPU
study best in-sample and predicts worst, study-facts §10; Choshen et al. 2025 judge laws by
their error on held-out larger or longer runs). Two held-out tests per form:

* longest length: fit every point with S below the longest length, predict the longest;
* interior sizes: for each size strictly between the smallest and the largest, fit the other
  sizes and predict it (the ends are extrapolation, the longest-length test covers that).

The error is the mean |log L̂ − log L| over the held-out points (≈ relative error); a form's
held-out error is the mean of the two tests it could run. The primary form is the one with
the lowest held-out error; forms within TIE of it count as equal and the one with fewer
parameters wins (TIE is far below the run-to-run noise, ~0.056 in log on the CPU study).
"""

from __future__ import annotations

import numpy as np

from equisweep.analysis import lawfit

TIE = 0.01
HELD_OUT_POLISH = 4  # the held-out fits polish their best few starts (they only predict)


def _error(form, N, S, L, train, test) -> float | None:
    """Mean |log error| on `test` of `form` fitted to `train` (None: too few to fit)."""
    n_train = int(train.sum())
    if (
        n_train < form.n_params + 2
        or len(np.unique(N[train])) < 2
        or len(np.unique(S[train])) < 2
        or not test.any()
    ):
        return None
    try:
        f = lawfit.fit(form, (N[train], S[train]), L[train], n_polish=HELD_OUT_POLISH)
    except FloatingPointError:
        return None
    pred = form.predict(f.theta, N[test], S[test])
    err = np.abs(np.log(pred) - np.log(L[test]))
    return float(np.mean(err)) if np.all(np.isfinite(err)) else float("inf")


def held_out(form, N, S, L) -> dict:
    """{"longest_length", "interior_sizes", "error"} for one form on one variant's points."""
    N, S, L = (np.asarray(v, dtype=float) for v in (N, S, L))
    s_max = float(S.max())
    long_err = _error(form, N, S, L, S < s_max, S == s_max)
    sizes = np.unique(N)
    per_size, errs, n_pts = [], [], 0
    for n in sizes[1:-1]:
        test = N == n
        e = _error(form, N, S, L, ~test, test)
        per_size.append({"N": float(n), "error": e, "n_points": int(test.sum())})
        if e is not None:
            errs.append(e * test.sum())
            n_pts += int(test.sum())
    size_err = float(np.sum(errs) / n_pts) if n_pts else None
    both = [e for e in (long_err, size_err) if e is not None]
    return {
        "longest_length": {"S": s_max, "error": long_err, "n_points": int((S == s_max).sum())},
        "interior_sizes": {"error": size_err, "per_size": per_size},
        "error": float(np.mean(both)) if both else None,
        "metric": "mean |log(predicted / measured)| over the held-out points",
    }


def choose(errors: dict[str, float | None], n_params: dict[str, int]) -> tuple[str | None, str]:
    """(primary form, why). Lowest held-out error; forms within TIE of it tie and the one with
    fewer parameters wins (then the lower error, then the name)."""
    known = {k: v for k, v in errors.items() if v is not None and np.isfinite(v)}
    if not known:
        return None, "no form could be judged out of sample (too few lengths or sizes)"
    best = min(known.values())
    tied = [k for k, v in known.items() if v <= best + TIE]
    pick = min(tied, key=lambda k: (n_params[k], known[k], k))
    why = (
        f"lowest held-out error ({known[pick]:.3f})"
        if len(tied) == 1
        else f"held-out error {known[pick]:.3f}, within {TIE} of the lowest ({best:.3f}) "
        f"among {', '.join(sorted(tied))}: fewest parameters ({n_params[pick]})"
    )
    return pick, why
