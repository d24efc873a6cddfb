"""Time the Approach 3 fitter on Epoch AI's Chinchilla extraction.

    python bench/analysis/bench_fit.py [--csv PATH] [--repeats 3] [--scipy-starts 100]

1. the full 4,500-start grid of Besiroglu et al. (batched L-BFGS + polish), median of runs;
2. 1,000 bootstrap resamples (all cores, then one process), median of runs;
3. the per-start scipy loop those authors ran (L-BFGS-B, finite-difference gradients, as in
   their notebook), and the same loop with our analytic gradient, on a seeded random subset
   of starts, extrapolated linearly to 4,500 (per-start cost does not depend on the others).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

from equisweep.analysis import bootstrap, lawfit

DEFAULT = Path(__file__).resolve().parents[2].parent / "shared/data/chinchilla_svg_extracted.csv"


def load(path):
    d = pd.read_csv(path).sort_values("loss", kind="stable")
    d = d.iloc[: len(d) - 5]
    N = d["Model Size"].to_numpy()
    return N, d["Training FLOP"].to_numpy() / (6 * N), d["loss"].to_numpy()


def timed(fn, repeats):
    out, times = None, []
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--csv", default=str(DEFAULT))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scipy-starts", type=int, default=100)
    a = ap.parse_args()
    N, D, L = load(a.csv)
    print(f"load average at start: {os.getloadavg()}")
    fit, t_fit = timed(lambda: lawfit.fit(lawfit.TWO_VAR, (N, D), L), a.repeats)
    print(f"grid fit (4500 starts): median {statistics.median(t_fit):.2f} s  runs {t_fit}")
    print(f"  coefs {fit.coefs}  objective {fit.objective:.10g}")
    for workers in (None, 1):
        b, t_b = timed(lambda w=workers: bootstrap.bootstrap_fit(
            lawfit.TWO_VAR, (N, D), L, fit, n_boot=1000, seed=0, workers=w), a.repeats)
        se = {k: float(np.std(v, ddof=1)) for k, v in lawfit.TWO_VAR.named(b.theta).items()}
        print(f"bootstrap 1000 (workers={workers or 'all'}): median "
              f"{statistics.median(t_b):.2f} s  runs {t_b}  ok {b.n_ok}  se {se}")

    obj = lawfit.HuberLSE(lawfit.TWO_VAR.design(np.log(np.vstack([N, D]))), np.log(L),
                          threads=1)
    grid = lawfit.besiroglu_grid()
    sub = grid[np.random.default_rng(0).choice(len(grid), a.scipy_starts, replace=False)]

    def f_only(t):
        return obj(t[None, :], np.arange(1))[0][0]

    def f_and_g(t):
        f, g = obj(t[None, :], np.arange(1))
        return f[0], g[0]

    for label, kw in (("finite-difference gradient (their notebook)", {}),
                      ("analytic gradient", {"jac": True})):
        fun = f_and_g if kw else f_only
        t = time.perf_counter()
        best = min((minimize(fun, s, method="L-BFGS-B", **kw) for s in sub),
                   key=lambda r: r.fun)
        dt = time.perf_counter() - t
        print(f"scipy per-start loop, {label}: {dt:.2f} s for {a.scipy_starts} starts -> "
              f"{dt * len(grid) / a.scipy_starts:.0f} s extrapolated to {len(grid)}; "
              f"best objective {best.fun:.10g}")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
