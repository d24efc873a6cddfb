"""Scaling-law fits in the log-sum-exp parameterisation with a Huber loss on log L.

Two forms, both as in Hoffmann et al. 2022 (Approach 3) and Besiroglu et al. 2024:

* ``two_var``: L(N, D) = E + A/N^α + B/D^β, i.e.
  log L̂ = LSE(a − α log N, b − β log D, e) with A = e^a, B = e^b, E = e^e;
  parameters in the order (a, b, e, alpha, beta).
* ``one_var``: L(x) = E + A·x^−γ, i.e. log L̂ = LSE(a − γ log x, e); parameters (a, e, gamma).
  Used for the compute frontier (Approach 1) and data efficiency.

The objective is Σ_i w_i·Huber_δ(log L̂_i − log L_i) (δ = 1e-3), minimised by L-BFGS from a
grid of starts (all starts at once, see lbfgs.py); the best start wins. Weights w_i are
bootstrap draw counts (1 for a plain fit).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from equisweep.analysis.lbfgs import MAX_ITER, minimize_batched

HUBER_DELTA = 1e-3


@dataclass(frozen=True)
class Form:
    name: str
    params: tuple[str, ...]  # raw parameters, in optimiser order
    n_covariates: int
    # each term: (intercept parameter index, exponent parameter index or None, covariate index)
    terms: tuple[tuple[int, int | None, int | None], ...]

    def design(self, log_x: np.ndarray) -> np.ndarray:
        """(J, P, n) tensor with term_j(θ)_i = θ · design[j, :, i]."""
        log_x = np.atleast_2d(log_x)
        n = log_x.shape[1]
        X = np.zeros((len(self.terms), len(self.params), n))
        for j, (ci, ei, xi) in enumerate(self.terms):
            X[j, ci] = 1.0
            if ei is not None:
                X[j, ei] = -log_x[xi]
        return X

    def objective(self, log_x, log_l, delta=HUBER_DELTA, weights=None, row_map=None,
                  threads=None):
        return HuberLSE(self.design(log_x), log_l, delta=delta, weights=weights,
                        row_map=row_map, threads=threads)

    def named(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Raw θ (…, P) -> user coefficients (E, A, B, alpha, beta / gamma)."""
        theta = np.asarray(theta, dtype=float)
        p = dict(zip(self.params, np.moveaxis(theta, -1, 0)))
        # a prefactor past e^709 (an undetermined fit or a wild bootstrap replicate) is inf:
        # non-finite values are dropped from intervals and flagged by validity.py
        with np.errstate(over="ignore"):
            out = {"E": np.exp(p["e"]), "A": np.exp(p["a"])}
            if "b" in p:
                out["B"] = np.exp(p["b"])
        if "b" in p:
            out["alpha"] = p["alpha"]
            out["beta"] = p["beta"]
        else:
            out["gamma"] = p["gamma"]
        return out


TWO_VAR = Form(
    name="two_var",
    params=("a", "b", "e", "alpha", "beta"),
    n_covariates=2,
    terms=((0, 3, 0), (1, 4, 1), (2, None, None)),
)
ONE_VAR = Form(
    name="one_var", params=("a", "e", "gamma"), n_covariates=1, terms=((0, 2, 0), (1, None, None))
)


def besiroglu_grid() -> np.ndarray:
    """The 4,500 starts of Besiroglu et al. 2024 (epoch-research/analyzing-chinchilla):
    α, β ∈ {0, .5, …, 2}, e ∈ {−1, −.5, …, 1}, a, b ∈ {0, 5, …, 25}; columns (a, b, e, α, β)."""
    alpha = np.arange(0, 2.5, 0.5)
    e = np.arange(-1, 1.5, 0.5)
    ab = np.arange(0, 30, 5)
    rows = [(a, b, ee, al, be) for al, be, ee, a, b in itertools.product(alpha, alpha, e, ab, ab)]
    return np.array(rows, dtype=float)


def adaptive_grid(log_x: np.ndarray, log_loss: np.ndarray) -> np.ndarray:
    """Starts for L = E + A/N^α + B/D^β scaled to the data, for losses far from the ~2-5 nats
    the Besiroglu grid was built for (our MSE losses are ~1e-4..1): α, β ∈ {0, .5, …, 2};
    E ∈ {1%, 30%, 60%, 90%} of the smallest loss; a, b put the power term at e^{−3, 0, +3}
    times the median loss at the covariate's mean (900 starts); columns (a, b, e, α, β)."""
    expo = np.arange(0, 2.5, 0.5)
    lmin, lmed = float(np.min(log_loss)), float(np.median(log_loss))
    e = lmin + np.log([0.01, 0.3, 0.6, 0.9])
    shift = np.array([-3.0, 0.0, 3.0])
    mx, md = float(np.mean(log_x[0])), float(np.mean(log_x[1]))
    rows = [
        (lmed + al * mx + sa, lmed + be * md + sb, ee, al, be)
        for al, be, ee, sa, sb in itertools.product(expo, expo, e, shift, shift)
    ]
    return np.array(rows, dtype=float)


def one_var_grid(log_x: np.ndarray, log_loss: np.ndarray) -> np.ndarray:
    """Starts for L = E + A x^−γ: γ over (0, 2], E below the smallest loss, a spread around
    the value that makes the power term match the data at the geometric-mean x."""
    gamma = np.array([0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0])
    lmin = float(np.min(log_loss))
    e = np.log(np.exp(lmin) * np.array([0.01, 0.3, 0.6, 0.9]))
    mid = float(np.mean(log_x))
    rows = []
    for gm, ee in itertools.product(gamma, e):
        excess = max(float(np.exp(np.median(log_loss))) - np.exp(ee), 1e-12)
        for shift in (-2.0, 0.0, 2.0):
            rows.append((np.log(excess) + gm * mid + shift, ee, gm))
    return np.array(rows, dtype=float)


_THREAD_MIN_WORK = 200_000
_POOLS: dict = {}


def _default_threads() -> int:
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _pool(n):
    from concurrent.futures import ThreadPoolExecutor

    if n not in _POOLS:
        _POOLS[n] = ThreadPoolExecutor(n, thread_name_prefix="equisweep-fit")
    return _POOLS[n]


class HuberLSE:
    """f(θ) = Σ_i w_i·Huber(LSE_j(θ·X_j)_i − log L_i) and its gradient, batched over rows.

    weights: None (all ones), (n,) shared, or (R, n) with row_map (K,) giving each batch row
    its weight row (bootstrap resamples × starts).
    """

    def __init__(self, X, log_loss, delta=HUBER_DELTA, weights=None, row_map=None, threads=None):
        self.X = np.ascontiguousarray(X)
        self.XT = np.ascontiguousarray(np.transpose(X, (0, 2, 1)))  # (J, n, P)
        self.y = np.asarray(log_loss, dtype=float)
        self.delta = float(delta)
        if weights is None:
            weights = np.ones_like(self.y)
        self.W = np.asarray(weights, dtype=float)
        self.row_map = row_map
        # a term without a covariate (the e of E) is one number per row: exp it once per row
        self.const = [bool(np.all(Xj == Xj[:, :1])) for Xj in self.X]
        self.Xeff = [Xj[:, :1] if c else Xj for Xj, c in zip(self.X, self.const)]
        self.threads = _default_threads() if threads is None else max(1, int(threads))

    def _weights(self, rows):
        if self.W.ndim == 1:
            return self.W
        return self.W[self.row_map[rows]]

    def predict_log(self, theta):
        T = np.stack([theta @ Xj for Xj in self.X])  # (J, k, n)
        m = T.max(axis=0)
        return m + np.log(np.exp(T - m).sum(axis=0))

    def __call__(self, theta, rows):
        k = len(rows)
        if self.threads > 1 and k * self.y.size >= _THREAD_MIN_WORK:
            # numpy's float64 exp/log have no AVX2 kernels, so they dominate; they release the
            # GIL, so row chunks on threads scale with cores
            parts = np.array_split(np.arange(k), self.threads)
            pool = _pool(self.threads)
            outs = list(pool.map(lambda p: self._call1(theta[p], rows[p]), parts))
            return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])
        return self._call1(theta, rows)

    def _call1(self, theta, rows):
        with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
            f, g = self._eval(theta, rows, stable=False)
            # exp without max-subtraction saves a third of the transcendental work; rows whose
            # terms over- or underflow (far-off starts) are redone the careful way
            bad = ~(np.isfinite(f) & np.all(np.isfinite(g), axis=1))
            if bad.any():
                f[bad], g[bad] = self._eval(theta[bad], rows[bad], stable=True)
        return f, g

    def _eval(self, theta, rows, stable):
        d = self.delta
        T = [theta @ Xj for Xj in self.Xeff]  # (k, n) or (k, 1) for constant terms
        if stable:
            m = np.maximum.reduce(np.broadcast_arrays(*T))
        s = np.zeros((len(theta), self.y.size))
        for t in T:
            if stable:
                t = t - m
                # exp of very negative arguments lands in subnormals (slow) and contributes
                # < 1e-26 relative to the largest term anyway
                np.maximum(t, -60.0, out=t)
            np.exp(t, out=t)
            s += t
        if not stable:
            s[~(s > 1e-280)] = np.nan  # all terms underflowed: let the stable path decide
        r = np.log(s)
        if stable:
            r += m
        r -= self.y
        c = np.clip(r, -d, d)
        # Huber(r) = c·(r − c/2) with c = clip(r, −δ, δ); its derivative is c
        r -= 0.5 * c
        r *= c
        w = self._weights(rows)
        f = r @ w if w.ndim == 1 else np.einsum("kn,kn->k", r, w)
        c *= w
        c /= s
        g = np.zeros_like(theta)
        for e, Xj, XTj, const in zip(T, self.Xeff, self.XT, self.const):
            if const:
                g += (c.sum(axis=1) * e[:, 0])[:, None] * Xj[:, 0]
            else:
                g += (c * e) @ XTj
        return f, g


@dataclass
class LawFit:
    form: Form
    theta: np.ndarray  # best raw parameters (P,)
    objective: float
    n_points: int
    n_starts: int
    local_optima: np.ndarray  # distinct converged optima, best first (M, P)
    seconds: float = 0.0
    coefs: dict[str, float] = field(default_factory=dict)
    converged: bool = True  # the winning start met a convergence test (not the iteration cap)
    starts: np.ndarray | None = None  # the start grid (validity checks read its range)

    def predict(self, *x) -> np.ndarray:
        return predict(self.form, self.theta, *x)


def predict(form: Form, theta, *x) -> np.ndarray:
    """L̂ for raw parameters theta (P,) or (R, P) at covariates x (each broadcastable).

    Evaluated as exp(LSE(a − α log N, b − β log D, e)), the form the fit itself uses: an
    undetermined fit (α ≈ 30, A ≈ 1e89) or a wild bootstrap replicate then gives a finite
    prediction wherever the loss itself is representable, instead of overflowing in A and
    N^α separately."""
    if not isinstance(form, Form):  # a law form of analysis/laws
        return form.predict(theta, *x)
    theta = np.asarray(theta, dtype=float)
    log_x = [np.log(np.asarray(v, dtype=float)) for v in x]
    if len(log_x) != form.n_covariates:
        raise ValueError(f"{form.name} takes {form.n_covariates} covariate(s), got {len(log_x)}")
    shape = np.broadcast_shapes(*(np.shape(v) for v in log_x))
    p = np.moveaxis(theta, -1, 0)  # (P,) or (P, R)
    batched = theta.ndim > 1
    sl = (slice(None),) + (None,) * len(shape) if batched else ()
    terms = []
    for ci, ei, xi in form.terms:
        t = p[ci][sl] if batched else p[ci]
        if ei is not None:
            t = t - (p[ei][sl] if batched else p[ei]) * log_x[xi]
        terms.append(np.broadcast_to(t, ((theta.shape[0],) if batched else ()) + shape))
    log_l = np.logaddexp.reduce(np.stack(terms), axis=0)
    # beyond ~1e308 a loss is not a number anyone can use: inf, which downstream code
    # treats as non-finite (dropped from bands), without a warning on the console
    with np.errstate(over="ignore"):
        return np.exp(log_l)


# Phase 1 stops each start the way scipy's L-BFGS-B does by default (the per-start loop of
# Besiroglu et al.); phase 2 then polishes the best few to machine precision, because the
# Huber objective is flat enough near the optimum that the default stop leaves A and B a
# percent or two short of converged.
SCIPY_LIKE = dict(ftol=2.220446049250313e-09, gtol=1e-5, f_floor=1.0)
POLISH = dict(ftol=1e-15, gtol=1e-12, max_iter=5000)
N_POLISH = 32


def fit(
    form,
    covariates,
    loss,
    *,
    starts: np.ndarray | None = None,
    delta: float = HUBER_DELTA,
    weights=None,
    threads: int | None = None,
    n_polish: int = N_POLISH,
) -> LawFit:
    """Fit `form` to positive covariates (tuple of arrays) and positive losses."""
    import time

    t0 = time.perf_counter()
    log_x = np.log(np.vstack([np.asarray(c, dtype=float) for c in covariates]))
    log_l = np.log(np.asarray(loss, dtype=float))
    if starts is None:
        starts = (form.starts(log_x, log_l) if not isinstance(form, Form)
                  else besiroglu_grid() if form is TWO_VAR else one_var_grid(log_x[0], log_l))
    obj = form.objective(log_x, log_l, delta=delta, weights=weights, threads=threads)
    res = minimize_batched(obj, starts, **SCIPY_LIKE)
    order = np.argsort(np.where(np.isfinite(res.f), res.f, np.inf))[:n_polish]
    order = order[np.isfinite(res.f[order])]
    if order.size == 0:
        raise FloatingPointError("no start gave a finite objective")
    pol = minimize_batched(obj, res.x[order], **POLISH)
    porder = np.argsort(np.where(np.isfinite(pol.f), pol.f, np.inf))
    best = pol.x[porder[0]]
    out = LawFit(
        form=form,
        theta=best,
        objective=float(pol.f[porder[0]]),
        n_points=int(log_l.size),
        n_starts=int(len(starts)),
        local_optima=distinct_optima(pol.x[porder], pol.f[porder]),
        seconds=time.perf_counter() - t0,
        converged=bool(pol.status[porder[0]] != MAX_ITER),
        starts=np.asarray(starts, dtype=float),
    )
    out.coefs = {k: float(v) for k, v in form.named(best).items()}
    return out


def distinct_optima(x_sorted, f_sorted, limit=8, tol=1e-3):
    """Up to `limit` optima (sorted by objective) that differ by more than tol in any raw
    parameter: the starts a bootstrap refit needs to find the resample's own best basin."""
    keep = []
    for xi, fi in zip(x_sorted, f_sorted):
        if not np.isfinite(fi) or not np.all(np.isfinite(xi)):
            continue
        if all(np.max(np.abs(xi - k)) > tol for k in keep):
            keep.append(xi)
            if len(keep) >= limit:
                break
    return np.array(keep)
