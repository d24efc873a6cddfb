"""Approach 3 and the one-variable power law recover planted coefficients; bootstrap
intervals cover them; the published Chinchilla fit is reproduced."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from equisweep.analysis import bootstrap, lawfit, scaling
from tests.helpers.cli import run_cli

# shared/ sits beside the clone (CI, /work/main) or beside the folder of worktrees
_CSV = "shared/data/chinchilla_svg_extracted.csv"
CHINCHILLA = next((Path(__file__).parents[k] / _CSV for k in (3, 4)
                   if (Path(__file__).parents[k] / _CSV).is_file()),
                  Path(__file__).parents[3] / _CSV)
# Besiroglu et al. 2024 fit, converged (the targets of the issue)
EPOCH = {"E": 1.8172, "A": 477.8, "B": 2143.0, "alpha": 0.3473, "beta": 0.3672}
# their bootstrap standard errors (paper, Table 1)
EPOCH_SE = {"E": 0.03, "A": 124.58, "B": 1293.23, "alpha": 0.02, "beta": 0.02}


def planted(seed=0, n=150, noise=0.01, scale=1.0):
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(1e3), np.log(1e7), n))
    S = np.exp(rng.uniform(np.log(1e2), np.log(1e5), n))
    c = dict(E=0.02 * scale, A=4.0 * scale, B=3.0 * scale, alpha=0.4, beta=0.55)
    L = (c["E"] + c["A"] / N ** c["alpha"] + c["B"] / S ** c["beta"]) * np.exp(
        noise * rng.normal(size=n))
    return N, S, L, c


@pytest.mark.parametrize("grid", ["adaptive", "besiroglu"])
def test_two_var_recovers_planted_law(grid):
    N, S, L, c = planted()
    starts = scaling.grid_starts(lawfit.TWO_VAR, (N, S), L, grid=grid, n_starts=400)
    f = lawfit.fit(lawfit.TWO_VAR, (N, S), L, starts=starts)
    assert f.coefs["alpha"] == pytest.approx(c["alpha"], abs=0.03)
    assert f.coefs["beta"] == pytest.approx(c["beta"], abs=0.03)
    assert f.coefs["E"] == pytest.approx(c["E"], rel=0.15)
    assert f.coefs["A"] == pytest.approx(c["A"], rel=0.4)
    assert f.coefs["B"] == pytest.approx(c["B"], rel=0.4)


def test_noise_free_data_is_fitted_exactly():
    N, S, L, c = planted(noise=0.0, scale=1e-3)  # MSE-scale losses
    starts = scaling.grid_starts(lawfit.TWO_VAR, (N, S), L, grid="adaptive", n_starts=200)
    f = lawfit.fit(lawfit.TWO_VAR, (N, S), L, starts=starts)
    for k, v in c.items():
        assert f.coefs[k] == pytest.approx(v, rel=1e-4), k
    assert f.objective < 1e-12


def test_one_var_recovers_planted_power_law():
    rng = np.random.default_rng(3)
    x = np.logspace(8, 14, 30)
    y = (0.05 + 40.0 * x**-0.3) * np.exp(0.005 * rng.normal(size=x.size))
    f = lawfit.fit(lawfit.ONE_VAR, (x,), y)
    assert f.coefs["gamma"] == pytest.approx(0.3, abs=0.02)
    assert f.coefs["E"] == pytest.approx(0.05, rel=0.1)


def test_bootstrap_interval_covers_truth_and_is_seeded():
    N, S, L, c = planted(seed=5, n=80, noise=0.02)
    starts = scaling.grid_starts(lawfit.TWO_VAR, (N, S), L, n_starts=300)
    base = lawfit.fit(lawfit.TWO_VAR, (N, S), L, starts=starts)
    b1 = bootstrap.bootstrap_fit(lawfit.TWO_VAR, (N, S), L, base, n_boot=60, seed=7, workers=1)
    b2 = bootstrap.bootstrap_fit(lawfit.TWO_VAR, (N, S), L, base, n_boot=60, seed=7, workers=2)
    # workers do not change answers (beyond BLAS summation order in flat directions)
    np.testing.assert_allclose(b1.theta, b2.theta, rtol=1e-6)
    reps = lawfit.TWO_VAR.named(b1.theta)
    for k in ("alpha", "beta"):
        s = bootstrap.summarize(reps[k])
        lo, hi = s["ci"]
        width = hi - lo
        assert lo - width <= c[k] <= hi + width, (k, s)
        assert 0 < s["se"] < 0.2


def test_group_bootstrap_draws_whole_groups():
    W = bootstrap.draw_weights(6, 50, seed=1, groups=[0, 0, 1, 1, 2, 2])
    assert np.all(W[:, 0] == W[:, 1]) and np.all(W[:, 4] == W[:, 5])
    assert np.all(W.sum(axis=1) == 6)


def test_fit_cli_json_on_synthetic_table(tmp_path, capsys):
    N, S, L, c = planted(seed=2, n=60, noise=0.005)
    p = tmp_path / "t.csv"
    p.write_text("n,s,loss\n" + "\n".join(f"{a},{b},{x}" for a, b, x in zip(N, S, L)))
    rc, out, err = run_cli(capsys, "fit", "--csv", p, "--n", "n", "--s", "s", "--loss", "loss",
                           "--grid", "adaptive", "--starts", "300", "--bootstrap", "40", "--json")
    assert rc == 0, err
    res = json.loads(out)
    for k in ("E", "A", "B", "alpha", "beta"):
        assert {k, f"{k}_se", f"{k}_ci"} <= set(res)
    assert res["n_points"] == 60 and res["seconds"] > 0
    assert res["alpha"] == pytest.approx(c["alpha"], abs=0.03)
    assert res["alpha_ci"][0] < res["alpha"] < res["alpha_ci"][1]
    assert res["status"] == "ok", res["diagnostics"]


@pytest.mark.slow
def test_chinchilla_reproduces_besiroglu_et_al(capsys):
    if not CHINCHILLA.is_file():
        pytest.skip(f"Epoch AI's Chinchilla extraction not found at {CHINCHILLA} "
                    "(CI keeps shared/ beside the clone)")
    rc, out, err = run_cli(capsys, "fit", "--csv", CHINCHILLA, "--n", "Model Size", "--compute",
                           "Training FLOP", "--loss", "loss", "--drop-highest", "5",
                           "--bootstrap", "200", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["n_points"] == 240 and r["n_starts"] == 4500
    assert r["status"] == "ok" and r["diagnostics"] == []  # a determined fit stays quiet
    assert abs(r["alpha"] - EPOCH["alpha"]) < 0.003
    assert abs(r["beta"] - EPOCH["beta"]) < 0.003
    assert abs(r["E"] - EPOCH["E"]) < 0.01
    assert r["A"] == pytest.approx(EPOCH["A"], rel=0.03)
    assert r["B"] == pytest.approx(EPOCH["B"], rel=0.03)
    for k, se in EPOCH_SE.items():  # same order as theirs
        assert se / 3 < r[f"{k}_se"] < se * 3, (k, r[f"{k}_se"])
    # speed (< 10 s for the 4,500 starts on an idle 2-core machine) is measured in
    # bench/analysis, not asserted here: a shared CI runner makes wall time meaningless
