"""L-BFGS over a batch of independent problems at once, in numpy.

Scaling-law fits restart L-BFGS from thousands of initial points (4,500 in Besiroglu et al.
2024). A Python loop over scipy's L-BFGS-B pays interpreter and Fortran-call overhead per
iteration per start (minutes); here every start is a row of one array, each row keeps its own
curvature history, step length and convergence test, so the rows are exactly the independent
problems a per-start loop would solve, but each iteration is a handful of vectorised passes.
Rows that have converged leave the working set, so late iterations only pay for the stragglers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# fg(x[rows], rows) -> (f[rows], g[rows]); `rows` lets a row carry its own data (bootstrap
# weights) without the optimiser knowing about it.
FunGrad = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

CONVERGED_GRAD = 0
CONVERGED_F = 1
STALLED = 2  # no step along the search direction decreased f: at the optimum to precision
MAX_ITER = 3


@dataclass
class BatchResult:
    x: np.ndarray  # (K, P)
    f: np.ndarray  # (K,)
    grad: np.ndarray  # (K, P)
    n_iter: np.ndarray  # (K,) iterations each row took
    status: np.ndarray  # (K,) one of the constants above
    n_evals: int  # row-evaluations summed over rows (cost measure)


def minimize_batched(
    fg: FunGrad,
    x0: np.ndarray,
    *,
    memory: int = 10,
    max_iter: int = 2000,
    gtol: float = 1e-10,
    ftol: float = 1e-13,
    max_ls: int = 30,
    c1: float = 1e-4,
    f_floor: float = 1e-300,
) -> BatchResult:
    """Minimise K independent smooth functions of P variables, one per row of x0.

    Convergence per row: max |g| <= gtol, or a decrease of f on an accepted step below
    ftol·max(|f|, f_floor) (f_floor = 1 gives scipy L-BFGS-B's test), or a line search that
    finds no decrease (stalled at machine precision).
    """
    x = np.array(x0, dtype=float, copy=True)
    if x.ndim != 2:
        raise ValueError("x0 must be (K, P)")
    K, P = x.shape
    all_rows = np.arange(K)
    f, g = fg(x, all_rows)
    f = np.array(f, dtype=float)
    g = np.array(g, dtype=float)
    n_evals = K
    S = np.zeros((memory, K, P))
    Y = np.zeros((memory, K, P))
    RHO = np.zeros((memory, K))
    gamma = np.ones(K)
    has_pair = np.zeros(K, bool)
    n_iter = np.zeros(K, int)
    status = np.full(K, MAX_ITER)
    done = ~np.isfinite(f) | (np.abs(g).max(axis=1) <= gtol)
    status[done & np.isfinite(f)] = CONVERGED_GRAD
    status[~np.isfinite(f)] = STALLED

    for it in range(max_iter):
        rows = np.flatnonzero(~done)
        if rows.size == 0:
            break
        slot = it % memory
        order = [(slot - 1 - j) % memory for j in range(memory)]  # newest first
        gr = g[rows]
        d = _two_loop(gr, S[:, rows], Y[:, rows], RHO[:, rows], gamma[rows], order)
        gd = np.einsum("kp,kp->k", gr, d)
        not_descent = ~(gd < 0)
        if not_descent.any():
            # stale curvature pairs: restart that row as steepest descent
            d[not_descent] = -gr[not_descent]
            gd[not_descent] = -np.einsum("kp,kp->k", gr[not_descent], gr[not_descent])
            RHO[:, rows[not_descent]] = 0.0
            has_pair[rows[not_descent]] = False
        t = np.where(has_pair[rows], 1.0, np.minimum(1.0, 1.0 / np.sqrt(-gd)))
        fr = f[rows]
        x_new, f_new, g_new, ok, t, evals = _armijo(fg, x[rows], fr, d, gd, t, rows, c1, max_ls)
        n_evals += evals
        n_iter[rows] += 1

        stalled = ~ok
        if stalled.any():
            done[rows[stalled]] = True
            status[rows[stalled]] = STALLED
        acc = np.flatnonzero(ok)
        if acc.size == 0:
            continue
        ra = rows[acc]
        s = x_new[acc] - x[ra]
        y = g_new[acc] - g[ra]
        sy = np.einsum("kp,kp->k", s, y)
        yy = np.einsum("kp,kp->k", y, y)
        good = sy > 1e-12 * yy
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # masked rows
            RHO[slot, ra] = np.where(good, 1.0 / np.where(good, sy, 1.0), 0.0)
            gamma[ra] = np.where(good, sy / np.where(good, yy, 1.0), gamma[ra])
        S[slot, ra] = s
        Y[slot, ra] = y
        has_pair[ra] |= good
        f_old = f[ra]
        x[ra], f[ra], g[ra] = x_new[acc], f_new[acc], g_new[acc]
        small_g = np.abs(g_new[acc]).max(axis=1) <= gtol
        small_f = (f_old - f_new[acc]) <= ftol * np.maximum(
            np.maximum(np.abs(f_old), np.abs(f_new[acc])), f_floor
        )
        status[ra[small_f]] = CONVERGED_F
        status[ra[small_g]] = CONVERGED_GRAD
        done[ra[small_f | small_g]] = True
    return BatchResult(x=x, f=f, grad=g, n_iter=n_iter, status=status, n_evals=n_evals)


def _two_loop(g, S, Y, RHO, gamma, order):
    # a row whose history overflowed gets a non-finite direction, which its line search
    # rejects (the row stalls): no warning for it
    with np.errstate(invalid="ignore", over="ignore"):
        return _two_loop1(g, S, Y, RHO, gamma, order)


def _two_loop1(g, S, Y, RHO, gamma, order):
    q = g.copy()
    alphas = []
    for j in order:
        a = RHO[j] * np.einsum("kp,kp->k", S[j], q)
        q -= a[:, None] * Y[j]
        alphas.append(a)
    r = gamma[:, None] * q
    for j, a in zip(reversed(order), reversed(alphas)):
        b = RHO[j] * np.einsum("kp,kp->k", Y[j], r)
        r += (a - b)[:, None] * S[j]
    return -r


def _armijo(fg, x, f, d, gd, t, rows, c1, max_ls):
    """Backtracking with safeguarded quadratic interpolation, row by row."""
    x_new = x + t[:, None] * d
    f_new, g_new = fg(x_new, rows)
    f_new = np.array(f_new, dtype=float)
    g_new = np.array(g_new, dtype=float)
    evals = rows.size
    ok = np.isfinite(f_new) & (f_new <= f + c1 * t * gd) & (f_new < f)
    for _ in range(max_ls):
        bad = np.flatnonzero(~ok)
        if bad.size == 0:
            break
        tb = t[bad]
        curv = 2.0 * (f_new[bad] - f[bad] - tb * gd[bad])
        with np.errstate(divide="ignore", invalid="ignore"):
            tq = -gd[bad] * tb * tb / curv
        tq = np.where(np.isfinite(tq) & (curv > 0), tq, 0.5 * tb)
        tb = np.clip(tq, 0.1 * tb, 0.5 * tb)
        t[bad] = tb
        xb = x[bad] + tb[:, None] * d[bad]
        fb, gb = fg(xb, rows[bad])
        evals += bad.size
        x_new[bad], f_new[bad], g_new[bad] = xb, fb, gb
        ok[bad] = np.isfinite(fb) & (fb <= f[bad] + c1 * tb * gd[bad]) & (fb < f[bad])
    return x_new, f_new, g_new, ok, t, evals
