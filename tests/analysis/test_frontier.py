"""Compute-optimal allocation: closed form == numerical minimisation; Approaches 1 and 2
recover the frontier a planted L(N, S) implies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar

from equisweep.analysis import approaches, frontier, lawfit

COEFS = dict(E=0.01, A=5.0, B=3.0, alpha=0.4, beta=0.6)


@settings(max_examples=30, deadline=None)
@given(
    alpha=st.floats(0.1, 1.5), beta=st.floats(0.1, 1.5), p=st.floats(0.7, 1.6),
    logA=st.floats(-2, 4), logB=st.floats(-2, 4),
)
def test_closed_form_equals_numerical(alpha, beta, p, logA, logB):
    c = dict(E=0.01, A=np.exp(logA), B=np.exp(logB), alpha=alpha, beta=beta)
    fm = frontier.FlopsModel("power", k=50.0, p=p)
    C = np.logspace(6, 14, 5)
    cf = frontier.allocation(c, fm, C)
    nm = frontier.allocation(c, fm, C, method="numerical")
    np.testing.assert_allclose(cf["N_opt"], nm["N_opt"], rtol=1e-5)
    np.testing.assert_allclose(cf["L_opt"], nm["L_opt"], rtol=1e-9)
    np.testing.assert_allclose(fm(cf["N_opt"]) * cf["S_opt"], C, rtol=1e-12)  # budget spent


def test_closed_form_is_the_minimum_by_scalar_search():
    fm = frontier.FlopsModel("power", k=12.0, p=1.3)
    C = 3e11
    cf = frontier.allocation(COEFS, fm, np.array([C]))

    def L(u):
        N = np.exp(u)
        c = COEFS
        return c["E"] + c["A"] / N ** c["alpha"] + c["B"] / (C / fm(N)) ** c["beta"]

    r = minimize_scalar(L, bounds=(0, 40), method="bounded", options={"xatol": 1e-10})
    assert cf["N_opt"][0] == pytest.approx(np.exp(r.x), rel=1e-4)
    ex = frontier.exponents(COEFS, 1.3)
    big = frontier.allocation(COEFS, fm, np.array([C, C * 10]))
    slope = np.log10(big["N_opt"][1] / big["N_opt"][0])
    assert slope == pytest.approx(ex["a_N"], rel=1e-9)


def test_flops_fit_power_and_fallback_to_interpolation():
    N = np.array([1e3, 1e4, 1e5, 1e6])
    fm = frontier.fit_flops(N, 7.0 * N**1.2)
    assert fm.kind == "power" and fm.p == pytest.approx(1.2) and fm.k == pytest.approx(7.0)
    F = 6 * N + 5e5  # an overhead a power law cannot follow
    fi = frontier.fit_flops(N, F)
    assert fi.kind == "interp"
    np.testing.assert_allclose(fi(N), F, rtol=1e-12)
    a = frontier.allocation(COEFS, fi, np.logspace(9, 13, 4))
    assert np.all(np.isfinite(a["N_opt"])) and np.all(np.diff(a["N_opt"]) > 0)
    one = frontier.fit_flops([5e4, 5e4], [1e9, 1e9])
    assert one.p == 1.0 and one(5e4) == pytest.approx(1e9)


def test_bootstrap_replicates_broadcast():
    reps = {k: np.array([v, v * 1.05, v * 0.95]) for k, v in COEFS.items()}
    out = frontier.allocation(reps, frontier.FlopsModel("power", k=6.0, p=1.0),
                              np.logspace(8, 12, 7))
    assert out["L_opt"].shape == (3, 7)


def _curves(coefs, sizes, fm, s_max=10**6, n=60):
    """Training curves that follow L(N, s) along the way (the Approach 1/2 assumption)."""
    out = []
    for N in sizes:
        s = np.logspace(0, np.log10(s_max), n)
        out.append((N, fm(N) * s, coefs["E"] + coefs["A"] / N ** coefs["alpha"]
                    + coefs["B"] / s ** coefs["beta"]))
    return out


def test_approach1_envelope_recovers_frontier_exponent():
    fm = frontier.FlopsModel("power", k=6.0, p=1.0)
    sizes = np.logspace(2, 8, 49)
    curves = _curves(COEFS, sizes, fm)
    C = np.concatenate([c[1] for c in curves])
    L = np.concatenate([c[2] for c in curves])
    ce, le = approaches.envelope(C, L, n_bins=40)
    assert np.all(np.diff(le) < 0)
    lo, hi = 1e6, 1e12  # inside the region where the envelope is set by interior optima
    m = (ce > lo) & (ce < hi)
    f = lawfit.fit(lawfit.ONE_VAR, (ce[m],), le[m])
    want = frontier.exponents(COEFS, 1.0)["gamma_L"]
    assert f.coefs["gamma"] == pytest.approx(want, abs=0.02)
    assert f.coefs["E"] == pytest.approx(COEFS["E"], rel=0.1)


def test_approach2_isoflop_recovers_nopt_exponent():
    fm = frontier.FlopsModel("power", k=6.0, p=1.0)
    sizes = np.logspace(2, 8, 25)
    curves = _curves(COEFS, sizes, fm, s_max=10**8)
    iso = approaches.isoflop(curves, n_levels=8)
    assert iso.reason is None and iso.n_valid >= 4
    assert iso.a == pytest.approx(frontier.exponents(COEFS, 1.0)["a_N"], abs=0.03)


def test_isoflop_says_what_is_missing():
    fm = frontier.FlopsModel("power", k=6.0, p=1.0)
    iso = approaches.isoflop(_curves(COEFS, [1e3, 1e5], fm))
    assert "need ≥ 3 distinct N" in iso.reason


def test_an_off_ladder_size_does_not_set_the_flops_exponent():
    """GATr's 804-parameter size costs ~4× the FLOPs per parameter of the rest: it is left
    out of p (and named), while F keeps every size for the allocation."""
    N = np.array([4e3, 8e3, 1.6e4, 3e4])
    F = 70.0 * N**1.1
    Nx, Fx = np.append(800.0, N), np.append(4 * 70.0 * 800.0**1.1, F)
    fm = frontier.fit_flops(Nx, Fx)
    assert fm.p == pytest.approx(1.1, rel=1e-9) and fm.off_ladder == [800.0]
    assert fm.kind == "interp" and fm(800.0) == pytest.approx(Fx[0], rel=1e-9)
    assert fm.to_json()["off_ladder"] == [800.0]
    assert frontier.fit_flops(N, F).off_ladder == []
