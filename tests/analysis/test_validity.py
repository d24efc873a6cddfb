"""Fit validity: each diagnostic fires on a table built to trip it and stays quiet on a
planted law; the status follows the worst severity."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

from equisweep.analysis import bootstrap, lawfit, scaling, validity


def law(N, S, E=0.02, A=4.0, B=3.0, alpha=0.4, beta=0.55):
    return E + A / N**alpha + B / S**beta


def planted_table(n=60, seed=0, noise=0.01, n_lo=1e3, n_hi=1e7, s_lo=1e2, s_hi=1e5, **coefs):
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(n_lo), np.log(n_hi), n))
    S = np.exp(rng.uniform(np.log(s_lo), np.log(s_hi), n))
    L = law(N, S, **coefs) * np.exp(noise * rng.normal(size=n))
    return N, S, L


def assess(N, S, L, n_boot=40):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning may escape a fit
        starts = scaling.grid_starts(lawfit.TWO_VAR, (N, S), L, grid="adaptive")
        res = scaling.fit_with_ci(lawfit.TWO_VAR, (N, S), L, n_boot=n_boot, seed=1,
                                  starts=starts, workers=1)
        return validity.assess_law(res.fit, {"N": N, "S": S}, L, res.boot), res


def codes(check):
    return {d["code"] for d in check["diagnostics"]}


# the quickstart's gatr tuned points (N, S, test loss) as measured on this machine: the
# fit ran to alpha ≈ 34 and E ≈ e^-667
QUICKSTART = np.array([
    (1588, 100, 0.000458321), (1588, 200, 0.00044341), (1588, 300, 0.000398354),
    (4496, 100, 0.000475374), (4496, 200, 0.000400943), (4496, 300, 0.000326704),
    (15228, 100, 0.000542216), (15228, 200, 0.000553327), (15228, 300, 0.000106825)])


@pytest.fixture(scope="module")
def planted():
    return assess(*planted_table())


def test_planted_law_is_ok_and_quiet(planted):
    check, res = planted
    assert check["status"] == "ok", check["diagnostics"]
    assert check["diagnostics"] == [] and check["reason"] is None
    assert res.fit.coefs["alpha"] == pytest.approx(0.4, abs=0.03)


@pytest.mark.parametrize("name,table,code,severity", [
    ("few points", planted_table(n=6), "few_points", "undetermined"),
    ("thin points", planted_table(n=12), "few_points", "weak"),
    ("steps over a third of a decade", planted_table(s_lo=100, s_hi=200), "narrow_covariate",
     "undetermined"),
    ("steep exponent", planted_table(alpha=4.0, A=4e12, n_lo=1e3, n_hi=1e5),
     "exponent_range", "undetermined"),
    ("exponent beyond the start grid", planted_table(alpha=2.6, A=1e7, n_lo=1e2, n_hi=1e5),
     "grid_bound", "weak"),
    ("no floor", planted_table(E=0.0), "E_zero", "weak"),
    ("noisy", planted_table(n=40, noise=0.15), "wide_interval", "weak"),
    ("very noisy", planted_table(n=20, noise=0.8), "wide_interval", "undetermined"),
    ("quickstart", tuple(QUICKSTART.T), "exponent_range", "undetermined"),
])
def test_each_diagnostic_fires_on_its_degenerate_table(name, table, code, severity):
    check, _ = assess(*table)
    hits = [d for d in check["diagnostics"] if d["code"] == code]
    assert hits, (name, check["diagnostics"])
    assert hits[0]["severity"] == severity
    assert check["status"] in (severity, "undetermined")
    assert check["reason"]


def test_quickstart_table_is_undetermined_for_every_reason_it_has():
    check, _ = assess(*QUICKSTART.T)
    assert check["status"] == "undetermined"
    # E ran off to e^-667: that is E → 0, reported as a collapsed floor, not a numeric bound
    assert {"few_points", "exponent_range", "E_zero", "narrow_covariate"} <= codes(check)


def test_collapsed_floor_is_a_note_when_a_floor_free_form_predicts_as_well():
    N, S, L = planted_table(E=0.0)
    _, res = assess(N, S, L, n_boot=0)
    weak = validity.assess_law(res.fit, {"N": N, "S": S}, L)
    note = validity.assess_law(res.fit, {"N": N, "S": S}, L, floor_free_as_good=True)
    assert weak["status"] == "weak" and "E_zero" in codes(weak)
    assert note["status"] == "ok" and note["reason"] is None
    assert [d["severity"] for d in note["diagnostics"]] == ["note"]
    assert "no floor in the measured range" in note["notes"][0]


@pytest.mark.parametrize("error, status", [(0.05, "ok"), (0.2, "weak"), (None, "ok")])
def test_held_out_error_is_judged_against_the_run_to_run_noise(planted, error, status):
    _, res = planted
    N, S, L = planted_table()
    check = validity.assess_law(res.fit, {"N": N, "S": S}, L,
                                held_out=(error, 0.04, "measured"))
    assert check["status"] == status
    if status == "weak":
        assert "held-out error 0.2 is above 2× the run-to-run noise 0.04" in check["reason"]


def test_e_above_smallest_loss_fires():
    N, S, L = planted_table(n=60)
    L[np.argmin(L)] *= 0.05  # one point far below the floor; Huber ignores it, E stays put
    check, res = assess(N, S, L, n_boot=0)
    assert res.fit.coefs["E"] > L.min()
    assert "E_above_min" in codes(check)


def test_optimiser_limit_and_failed_bootstrap_fire(planted):
    _, res = planted
    capped = dataclasses.replace(res.fit, converged=False)
    N, S, L = planted_table()
    c = validity.assess_law(capped, {"N": N, "S": S}, L)
    assert codes(c) == {"not_converged"} and c["status"] == "weak"
    few = bootstrap.Bootstrap(theta=res.boot.theta[:10], n_requested=40)
    c = validity.assess_law(res.fit, {"N": N, "S": S}, L, few)
    assert "bootstrap_failed" in codes(c) and c["status"] == "undetermined"


def test_isoflop_checks():
    assert validity.assess_isoflop(0.5, [1e10, 1e11, 1e12], 3, np.full(50, 0.5))["status"] == "ok"
    c = validity.assess_isoflop(4.0, [1e10, 1.2e10], 2, np.r_[np.full(20, np.nan), np.ones(30)])
    assert {"few_points", "narrow_covariate", "exponent_range", "bootstrap_failed"} <= codes(c)
    assert c["status"] == "undetermined"


def test_status_is_the_worst_severity():
    w = validity.diag("x", "weak", "w")
    u = validity.diag("y", "undetermined", "u")
    assert validity.verdict([])["status"] == "ok"
    assert validity.verdict([w])["status"] == "weak"
    v = validity.verdict([w, u])
    assert v["status"] == "undetermined" and v["reason"] == "u"
    assert validity.usable({"status": "weak"}) and not validity.usable(v)
