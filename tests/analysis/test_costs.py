"""Question 2 under every cost convention: the measured answer at a budget is each variant's
best point within it, and the conventions order the families differently when their costs
per parameter differ."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from equisweep.analysis import costs


def points():
    """'eq' costs 10x the counted FLOPs per parameter of 'plain' and reaches 10% lower loss
    at the same N and samples: behind at equal counted FLOPs, ahead at equal 6·N·samples."""
    rows = []
    for v, fpp, gain in (("eq", 100.0, 0.9), ("plain", 10.0, 1.0)):
        for N in (1e3, 1e4):
            for samples in (1e3, 1e4, 1e5):
                loss = gain * (N * samples) ** -0.1
                rows.append({"variant": v, "key": f"{v}-{N:g}-{samples:g}", "N": N,
                             "samples": samples, "D": 100.0, "C_flops": fpp * N * samples,
                             "wall_s": fpp * N * samples / 1e9, "loss": loss,
                             "loss_se": 0.01 * loss})
    return pd.DataFrame(rows)


def test_conventions_side_by_side():
    q = costs.question2(points(), [("eq", "plain")], {"log_sd": 0.05, "measured": False})
    c = q["conventions"]
    assert list(c) == ["counted", "nominal", "6N_samples", "wall"]
    assert c["nominal"]["status"] == "not available"
    assert "omitted" in q["interval"]
    for name in ("counted", "6N_samples", "wall"):
        (pair,) = c[name]["pairs"]
        assert len(pair["budgets"]) == costs.N_BUDGETS
    # at equal N·samples 'eq' is 10% lower at every budget
    for r in c["6N_samples"]["pairs"][0]["budgets"]:
        assert r["ratio"] == pytest.approx(0.9) and r["ci"][0] < 0.9 < r["ci"][1]
        assert r["text"].startswith("eq's loss is 10% [") and "lower than plain's" in r["text"]
    # at equal counted FLOPs 'eq' has a tenth of the N·samples: behind at the largest budget
    top = c["counted"]["pairs"][0]["budgets"][-1]
    assert top["ratio"] == pytest.approx(0.9 * 10 ** 0.1) and "higher" in top["text"]


def test_measured_run_noise_widens_the_interval():
    quiet = costs.question2(points(), [("eq", "plain")], {"log_sd": 0.05, "measured": False})
    noisy = costs.question2(points(), [("eq", "plain")], {"log_sd": 0.05, "measured": True})
    a = quiet["conventions"]["counted"]["pairs"][0]["budgets"][0]["ci"]
    b = noisy["conventions"]["counted"]["pairs"][0]["budgets"][0]["ci"]
    assert b[0] < a[0] and b[1] > a[1] and "0.050" in noisy["interval"]


def test_best_within_ignores_points_over_budget():
    loss, cost = np.array([3.0, 1.0, 2.0]), np.array([1.0, 10.0, 2.0])
    assert costs.best_within(loss, cost, 5.0) == 2
    assert costs.best_within(loss, cost, 0.5) is None
