"""The batched L-BFGS solves each row as its own problem, like a per-start scipy loop."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from equisweep.analysis import lawfit
from equisweep.analysis.lbfgs import STALLED, minimize_batched


def rosenbrock(x, rows):
    a, b = x[:, 0], x[:, 1]
    f = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    g = np.stack([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)], axis=1)
    return f, g


def test_rosenbrock_every_row_reaches_the_minimum():
    x0 = np.array([[-1.2, 1.0], [2.0, 2.0], [0.0, 0.0], [-3.0, 5.0], [1.0, 1.0]])
    res = minimize_batched(rosenbrock, x0, gtol=1e-9)
    np.testing.assert_allclose(res.x, 1.0, atol=1e-6)
    assert res.n_iter[-1] == 0  # started at the optimum: no work


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_convex_quadratics_solved_per_row(p, seed):
    rng = np.random.default_rng(seed)
    K = 7
    M = rng.normal(size=(K, p, p))
    H = M @ np.transpose(M, (0, 2, 1)) + 0.5 * np.eye(p)
    c = rng.normal(size=(K, p))

    def fg(x, rows):
        Hx = np.einsum("kij,kj->ki", H[rows], x)
        return 0.5 * np.einsum("ki,ki->k", x, Hx) - np.einsum("ki,ki->k", c[rows], x), \
            Hx - c[rows]

    res = minimize_batched(fg, rng.normal(size=(K, p)), gtol=1e-10)
    np.testing.assert_allclose(res.x, np.linalg.solve(H, c[..., None])[..., 0], atol=1e-6)


def test_rows_do_not_interact():
    """Solving a row alone or inside a batch gives the same answer."""
    x0 = np.array([[-1.2, 1.0], [3.0, -2.0]])
    both = minimize_batched(rosenbrock, x0)
    alone = minimize_batched(rosenbrock, x0[1:])
    np.testing.assert_allclose(both.x[1], alone.x[0], rtol=0, atol=1e-12)
    assert both.n_iter[1] == alone.n_iter[0]


def test_nonfinite_start_is_marked_not_crashed():
    def fg(x, rows):
        f = np.where(x[:, 0] > 5, np.nan, (x[:, 0] - 1) ** 2)
        return f, np.stack([2 * (x[:, 0] - 1)], axis=1)

    res = minimize_batched(fg, np.array([[10.0], [0.0]]))
    assert res.status[0] == STALLED
    assert abs(res.x[1, 0] - 1) < 1e-6


def _synthetic(seed=0, n=120):
    rng = np.random.default_rng(seed)
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), n))
    D = np.exp(rng.uniform(np.log(1e9), np.log(1e11), n))
    L = (1.8 + 480 / N**0.34 + 2100 / D**0.37) * np.exp(0.01 * rng.normal(size=n))
    return N, D, L


def test_huber_gradient_matches_finite_differences():
    N, D, L = _synthetic()
    obj = lawfit.HuberLSE(lawfit.TWO_VAR.design(np.log(np.vstack([N, D]))), np.log(L),
                          threads=1)
    theta = np.array([[6.0, 7.5, 0.6, 0.33, 0.36], [20.0, 0.0, -1.0, 1.5, 0.0]])
    f, g = obj(theta, np.arange(2))
    eps = 1e-7
    for j in range(5):
        tp, tm = theta.copy(), theta.copy()
        tp[:, j] += eps
        tm[:, j] -= eps
        fd = (obj(tp, np.arange(2))[0] - obj(tm, np.arange(2))[0]) / (2 * eps)
        np.testing.assert_allclose(g[:, j], fd, rtol=1e-4, atol=1e-9)


def test_threaded_and_single_thread_evaluations_agree():
    N, D, L = _synthetic()
    X = lawfit.TWO_VAR.design(np.log(np.vstack([N, D])))
    starts = lawfit.besiroglu_grid()[::3]
    rows = np.arange(len(starts))
    f1, g1 = lawfit.HuberLSE(X, np.log(L), threads=1)(starts, rows)
    f2, g2 = lawfit.HuberLSE(X, np.log(L), threads=2)(starts, rows)
    np.testing.assert_allclose(f1, f2, rtol=1e-13)
    np.testing.assert_allclose(g1, g2, rtol=1e-12, atol=1e-300)


@pytest.mark.slow
def test_same_optimum_as_per_start_scipy_loop():
    """The batched solver and scipy's L-BFGS-B, one start at a time, pick the same best."""
    N, D, L = _synthetic(seed=1)
    X = lawfit.TWO_VAR.design(np.log(np.vstack([N, D])))
    obj = lawfit.HuberLSE(X, np.log(L), threads=1)
    starts = lawfit.besiroglu_grid()[np.random.default_rng(0).choice(4500, 20, replace=False)]

    def one(t):
        f, g = obj(t[None, :], np.arange(1))
        return f[0], g[0]

    # run scipy to convergence too: with its default ftol it stops early on this flat
    # objective, which would compare stopping rules rather than optima
    opts = {"ftol": 1e-15, "gtol": 1e-12, "maxiter": 15000}
    best_scipy = min((minimize(one, s, jac=True, method="L-BFGS-B", options=opts)
                      for s in starts), key=lambda r: r.fun)
    ours = lawfit.fit(lawfit.TWO_VAR, (N, D), L, starts=starts)
    assert ours.objective <= best_scipy.fun * (1 + 1e-9)
    np.testing.assert_allclose(ours.theta[3:], best_scipy.x[3:], atol=2e-3)
    assert ours.coefs["E"] == pytest.approx(np.exp(best_scipy.x[2]), rel=5e-3)
