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

from equisweep.analysis.lbfgs import minimize_batched

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

    def named(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Raw θ (…, P) -> user coefficients (E, A, B, alpha, beta / gamma)."""
        theta = np.asarray(theta, dtype=float)
        p = dict(zip(self.params, np.moveaxis(theta, -1, 0)))
        out = {"E": np.exp(p["e"]), "A": np.exp(p["a"])}
        if "b" in p:
            out["B"] = np.exp(p["b"])
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


class HuberLSE:
    """f(θ) = Σ_i w_i·Huber(LSE_j(θ·X_j)_i − log L_i) and its gradient, batched over rows.

    weights: None (all ones), (n,) shared, or (R, n) with row_map (K,) giving each batch row
    its weight row (bootstrap resamples × starts).
    """

    def __init__(self, X, log_loss, delta=HUBER_DELTA, weights=None, row_map=None):
        self.X = np.ascontiguousarray(X)
        self.XT = np.ascontiguousarray(np.transpose(X, (0, 2, 1)))  # (J, n, P)
        self.y = np.asarray(log_loss, dtype=float)
        self.delta = float(delta)
        if weights is None:
            weights = np.ones_like(self.y)
        self.W = np.asarray(weights, dtype=float)
        self.row_map = row_map

    def _weights(self, rows):
        if self.W.ndim == 1:
            return self.W
        return self.W[self.row_map[rows]]

    def predict_log(self, theta):
        T = np.stack([theta @ Xj for Xj in self.X])  # (J, k, n)
        m = T.max(axis=0)
        return m + np.log(np.exp(T - m).sum(axis=0))

    def __call__(self, theta, rows):
        d = self.delta
        T = [theta @ Xj for Xj in self.X]
        m = T[0].copy()
        for t in T[1:]:
            np.maximum(m, t, out=m)
        s = None
        for t in T:
            t -= m
            # exp of very negative arguments lands in subnormals, which are ~4x slower and
            # contribute < 1e-26 relative to the largest term anyway
            np.maximum(t, -60.0, out=t)
            np.exp(t, out=t)
            s = t.copy() if s is None else np.add(s, t, out=s)
        r = np.log(s)
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
        g = sum((c * e) @ XTj for e, XTj in zip(T, self.XT))
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

    def predict(self, *x) -> np.ndarray:
        return predict(self.form, self.theta, *x)


def predict(form: Form, theta, *x) -> np.ndarray:
    """L̂ for raw parameters theta (P,) or (R, P) at covariates x (each broadcastable)."""
    c = form.named(np.asarray(theta, dtype=float))
    if form is TWO_VAR:
        N, D = (np.asarray(v, dtype=float) for v in x)
        if np.ndim(c["E"]):
            sl = (slice(None),) + (None,) * np.ndim(N)
            c = {k: v[sl] for k, v in c.items()}
        return c["E"] + c["A"] / N ** c["alpha"] + c["B"] / D ** c["beta"]
    (X,) = (np.asarray(v, dtype=float) for v in x)
    if np.ndim(c["E"]):
        sl = (slice(None),) + (None,) * np.ndim(X)
        c = {k: v[sl] for k, v in c.items()}
    return c["E"] + c["A"] * X ** (-c["gamma"])


def fit(
    form: Form,
    covariates,
    loss,
    *,
    starts: np.ndarray | None = None,
    delta: float = HUBER_DELTA,
    weights=None,
) -> LawFit:
    """Fit `form` to positive covariates (tuple of arrays) and positive losses."""
    import time

    t0 = time.perf_counter()
    log_x = np.log(np.vstack([np.asarray(c, dtype=float) for c in covariates]))
    log_l = np.log(np.asarray(loss, dtype=float))
    if starts is None:
        starts = besiroglu_grid() if form is TWO_VAR else one_var_grid(log_x[0], log_l)
    obj = HuberLSE(form.design(log_x), log_l, delta=delta, weights=weights)
    res = minimize_batched(obj, starts)
    order = np.argsort(np.where(np.isfinite(res.f), res.f, np.inf))
    best = res.x[order[0]]
    optima = distinct_optima(res.x[order], res.f[order])
    out = LawFit(
        form=form,
        theta=best,
        objective=float(res.f[order[0]]),
        n_points=int(log_l.size),
        n_starts=int(len(starts)),
        local_optima=optima,
        seconds=time.perf_counter() - t0,
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
