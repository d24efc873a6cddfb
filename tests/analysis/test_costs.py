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
    assert c["nominal"]["status"] == "not available"  # no C_nominal: not approximated
    assert "models/nominal.py" in c["nominal"]["reason"]
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


def test_nominal_convention_answers_and_per_parameter_costs_tell_the_conventions_apart():
    """'eq' costs 6x the nominal FLOPs per parameter where it costs 10x as counted. At the
    largest shared nominal budget (plain's top, N·samples 1e9) the best 'eq' point within it
    is one of N·samples 1e8 (1e9 / 6 lies between the grid's 1e8 and 1e9)."""
    pts = points()
    pts["C_nominal"] = np.where(pts["variant"] == "eq", 6.0, 1.0) * pts["N"] * pts["samples"]
    pts.loc[0, "C_nominal"] = np.nan  # a trial without a nominal count is left out
    q = costs.question2(pts, [("eq", "plain")], {"log_sd": 0.05, "measured": False})
    nom = q["conventions"]["nominal"]
    assert nom["status"] == "answered"
    top = nom["pairs"][0]["budgets"][-1]
    assert top["ratio"] == pytest.approx(0.9 * 10 ** 0.1) and "higher" in top["text"]
    per = q["per_parameter"]
    assert per["eq"]["counted"] / per["plain"]["counted"] == pytest.approx(10)
    assert per["eq"]["nominal"] / per["plain"]["nominal"] == pytest.approx(6)


def test_nominal_cost_of_rows_written_before_the_column_is_computed_from_their_config(store):
    """New rows carry nominal_flops_per_step; older ones (null) get it from family, size and
    config through models/nominal.py, the same number; `--compute nominal` fits on it."""
    from equisweep.analysis.data import load_sweep
    from equisweep.models.nominal import per_step

    task = {"trajectories": 64, "bodies": [2, 3], "vertices": 8}
    sizes = {"gatr": {"width": 4, "depth": 1, "scalars": 16, "heads": 2},
             "transformer": {"width": 8, "depth": 1, "heads": 8, "fourier": 0,
                             "multi_query": True, "mlp_ratio": 2}}
    expected = {}
    with store.writer("old") as w:
        for i, (fam, size) in enumerate(sizes.items()):
            nominal = per_step(fam, size, task, 4)
            config = {"family": fam, "size": size, "task": task, "training": {"batch_size": 4}}
            key = f"{fam}-trial"
            w.add_trial({"key": key, "family": fam, "size": size, "n_params": 1000,
                         "flops_per_step": 1e6, "steps": 50, "train_trajectories": 8,
                         "augment": False, "seed": 0, "hparams": {}, "config": config,
                         "nominal_flops_per_step": nominal if i == 0 else None,
                         "status": "finished", "attempt": 1})
            w.add_metrics([{"key": key, "attempt": 1, "step": 50, "samples": 200,
                            "flops": 5e7, "val_loss": 0.1, "test_loss": 0.1}])
            expected[key] = 50 * nominal
    final = load_sweep(store, "old").final.set_index("key")
    assert final["C_nominal"].to_dict() == pytest.approx(expected)
    axis = load_sweep(store, "old", compute="nominal").final.set_index("key")
    assert axis["C"].to_dict() == pytest.approx(expected)
