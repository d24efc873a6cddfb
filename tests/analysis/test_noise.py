"""Run-to-run noise: measured from seed replicates, and carried into intervals by the
bootstrap clustered by trunk (all lengths of one run share its noise)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from equisweep.analysis import lawfit, noise, validity
from equisweep.analysis.bootstrap import bootstrap_fit
from equisweep.analysis.laws import FORMS

FORM = FORMS["kaplan"]
TRUTH = {"a": (np.log(3.0), 0.4, np.log(5.0), 0.45), "b": (np.log(2.5), 0.45, np.log(4.0), 0.5)}
SIZES, LENGTHS, SEEDS = np.geomspace(1e3, 3e4, 4), np.array([1e3, 3e3, 1e4]), 3
SIGMA = 0.06  # planted run-to-run noise (log-sd), shared by every length of a trunk
AT = (5e3, 3e3)  # where the ratio of the two variants is read


def theta(v):
    a, al, b, be = TRUTH[v]
    return np.array([a, b, al, be])


def sweep(rng):
    """One synthetic WSD sweep per variant: a trunk per (size, seed) with its forks."""
    rows = []
    for v in TRUTH:
        for i, n in enumerate(SIZES):
            for s in range(SEEDS):
                z = rng.normal()
                for S in LENGTHS:
                    loss = FORM.predict(theta(v), n, S) * np.exp(SIGMA * z + 0.005 * rng.normal())
                    rows.append(
                        {
                            "variant": v,
                            "size": str(i),
                            "S": S,
                            "D": 1.0,
                            "seed": s,
                            "N": n,
                            "loss": float(loss),
                            "cluster": f"{v}-{i}-{s}",
                        }
                    )
    return pd.DataFrame(rows)


def ratio_interval(df, seed):
    starts = FORM.starts(np.log(np.vstack([df["N"], df["S"]])), np.log(df["loss"]))[::9]
    preds = {}
    for v in TRUTH:
        d = df[df["variant"] == v]
        x = (d["N"].to_numpy(), d["S"].to_numpy())
        f = lawfit.fit(FORM, x, d["loss"].to_numpy(), starts=starts, n_polish=4)
        b = bootstrap_fit(
            FORM,
            x,
            d["loss"].to_numpy(),
            f,
            n_boot=100,
            seed=seed,
            groups=d["cluster"].to_numpy(),
            workers=1,
        )
        preds[v] = FORM.predict(b.theta[:100], *AT)
    n = min(map(len, preds.values()))
    return np.quantile(preds["a"][:n] / preds["b"][:n], [0.025, 0.975])


def test_clustered_bootstrap_covers_the_true_ratio_with_seed_noise():
    """50 synthetic sweeps with planted run-to-run noise: the 95% interval of the fitted
    loss ratio covers the true ratio in ≥ 90% of them, and the replicates measure the
    planted noise."""
    rng = np.random.default_rng(0)
    true = float(FORM.predict(theta("a"), *AT) / FORM.predict(theta("b"), *AT))
    hits, sds = 0, []
    for k in range(50):
        df = sweep(rng)
        lo, hi = ratio_interval(df, seed=k)
        hits += bool(lo <= true <= hi)
        rn = noise.run_noise(df)
        assert rn["measured"] and rn["n_groups"] == 2 * len(SIZES) * len(LENGTHS)
        sds.append(rn["log_sd"])
    assert hits >= 45, hits
    assert np.mean(sds) == pytest.approx(SIGMA, rel=0.1)


def test_without_replicates_the_noise_is_assumed_and_the_fix_is_named():
    df = sweep(np.random.default_rng(1))
    rn = noise.run_noise(df[df["seed"] == 0])
    assert not rn["measured"] and rn["log_sd"] == validity.ASSUMED_RUN_NOISE
    assert "omit run-to-run noise" in rn["statement"] and "seed: [0, 1]" in rn["statement"]
