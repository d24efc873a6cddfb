"""The fits of one variant (DESIGN §8), each a JSON block for fits.json with its validity.

Every block has "status" (ok | weak | undetermined), "diagnostics" and "reason" (see
validity.py). Derived results (the compute-optimal frontier, allocation, exponents of
N_opt(C)) are computed only from ok/weak fits; an undetermined block keeps its fitted
coefficients for inspection and says "not determined" instead of a frontier.

Choices (reported in the blocks):
- Approach 3 fits L(N, S) = E + A/N^α + B/S^β with S = training steps, on the final test loss
  of the points at the variant's largest train_trajectories (the least data-limited ones).
- Approach 1 and Approach 2 read the validation-loss curves of the same points (test loss
  exists at the end only).
- Data efficiency fits L(D) = E + B·D^−β to one point per train_trajectories: the point with
  the lowest validation loss at that D (its test loss is fitted).
"""

from __future__ import annotations

import numpy as np

from equisweep.analysis import approaches, frontier, lawfit, validity
from equisweep.analysis.bootstrap import draw_weights
from equisweep.analysis.scaling import (
    NotEnoughData,
    band,
    block,
    fit_with_ci,
    grid_starts,
    require_one_var,
    require_two_var,
)

N_GRID = 60


def run_section(fn, *args, **kw):
    """A section's (block, extras); data that cannot carry the fit give an undetermined
    block with the reason instead of an exception."""
    try:
        return fn(*args, **kw)
    except NotEnoughData as err:
        return validity.not_enough_data(str(err)), None
    except (FloatingPointError, np.linalg.LinAlgError) as err:
        return validity.verdict([validity.diag("fit_failed", "undetermined",
                                               f"fit failed: {err}")]), None


def c_grid(lo, hi, n=N_GRID):
    if hi <= lo:
        hi = lo * 10
    return np.logspace(np.log10(lo), np.log10(hi), n)


def approach3(sel, fm, n_boot, seed, workers, progress, unit="FLOPs"):
    dmax = np.nanmax(sel["D"]) if np.isfinite(sel["D"]).any() else np.nan
    sub = sel[sel["D"] == dmax] if np.isfinite(dmax) else sel
    N, S, L = (sub[c].to_numpy(float) for c in ("N", "S", "loss"))
    require_two_var(N, S, names=("N (model sizes)", "S (step counts)"))
    starts = grid_starts(lawfit.TWO_VAR, (N, S), L, grid="adaptive")
    res = fit_with_ci(lawfit.TWO_VAR, (N, S), L, n_boot=n_boot, seed=seed, starts=starts,
                      workers=workers, progress=progress)
    check = validity.assess_law(res.fit, {"N (parameters)": N, "S (steps)": S}, L, res.boot)
    out = {
        **check,
        "form": "L(N, S) = E + A/N^alpha + B/S^beta",
        "covariates": {"N": "n_params", "S": "steps"},
        "data": {
            "selection": f"final {'/'.join(sorted(set(sub['loss_kind'])))} loss of the points "
                         f"with train_trajectories = {dmax:g}" if np.isfinite(dmax)
                         else "final loss of all points",
            "n_points": int(L.size),
            "keys": sub["key"].tolist(),
            "N": N.tolist(), "S": S.tolist(), "loss": L.tolist(),
        },
        "coefficients": res.coef_blocks(),
        "objective": res.fit.objective,
        "n_starts": res.fit.n_starts,
        "bootstrap_ok": res.boot.n_ok,
    }
    if not validity.usable(check):
        out["frontier"] = None
        out["not_determined"] = f"no compute-optimal frontier: {check['reason']}"
        return out, None
    samples = res.samples()
    Cg = c_grid(float(sel["C"].min()), float(sel["C"].max()))
    alloc = frontier.allocation(res.fit.coefs, fm, Cg)
    alloc_r = frontier.allocation(samples, fm, Cg) if res.boot.n_ok else None
    p = fm.p if fm.kind == "power" else float(np.polyfit(fm.log_n, fm.log_f, 1)[0])
    ex = frontier.exponents(res.fit.coefs, p)
    ex_r = frontier.exponents(samples, p) if res.boot.n_ok else {}
    out["exponents"] = {
        "N_opt ~ C^a": block(ex["a_N"], ex_r.get("a_N")),
        "S_opt ~ C^b": block(ex["b_S"], ex_r.get("b_S")),
        "L* - E ~ C^-gamma": block(ex["gamma_L"], ex_r.get("gamma_L")),
        "flops_exponent_p": p,
    }
    out["allocation_method"] = "closed_form" if fm.kind == "power" else "numerical"
    out["frontier"] = {
        "C": Cg.tolist(), "unit": unit,
        **{k: band(alloc[k], None if alloc_r is None else alloc_r[k])
           for k in ("N_opt", "S_opt", "L_opt")},
    }
    reps = {"coefs": res.fit.coefs, "samples": samples, "flops": fm,
            "range": (float(sel["C"].min()), float(sel["C"].max()))}
    return out, reps


def _one_var(x, y, n_boot, seed, workers, groups=None):
    x, y = np.asarray(x, float), np.asarray(y, float)
    starts = grid_starts(lawfit.ONE_VAR, (x,), y)
    return fit_with_ci(lawfit.ONE_VAR, (x,), y, n_boot=n_boot, seed=seed, starts=starts,
                       workers=workers, groups=groups)


def _valid_curves(curves):
    return curves[np.isfinite(curves["val_loss"]) & (curves["val_loss"] > 0)
                  & np.isfinite(curves["C"]) & (curves["C"] > 0)]


def approach1(curves, n_boot, seed, workers):
    cv = _valid_curves(curves)
    if cv.empty:
        raise NotEnoughData("need training curves with val_loss (none recorded)")
    c, l = approaches.envelope(cv["C"], cv["val_loss"])
    require_one_var(c, 4, "envelope points (compute bins where some curve sets a new best)")
    res = _one_var(c, l, n_boot, seed, workers)
    check = validity.assess_law(res.fit, {"C (envelope compute)": c}, l, res.boot)
    out = {
        **check,
        "form": "L(C) = E + A*C^-gamma on the lower envelope of val_loss vs cumulative compute",
        "data": {"n_points": int(c.size), "C": c.tolist(), "loss": l.tolist(),
                 "n_curves": int(cv["key"].nunique())},
        "coefficients": res.coef_blocks(),
        "bootstrap_ok": res.boot.n_ok,
        "resampling": "envelope points",
    }
    if validity.usable(check):
        Cg = c_grid(float(c.min()), float(c.max()))
        fitted = lawfit.predict(lawfit.ONE_VAR, res.fit.theta, Cg)
        fitted_r = lawfit.predict(lawfit.ONE_VAR, res.boot.theta, Cg) if res.boot.n_ok else None
        out["curve"] = {"C": Cg.tolist(), "L": band(fitted, fitted_r)}
    return out, None


def approach2(curves, n_boot, seed):
    cv = _valid_curves(curves)
    groups = [(float(g["N"].iloc[0]), g["C"].to_numpy(float), g["val_loss"].to_numpy(float))
              for _, g in cv.groupby("key")]
    if not groups:
        raise NotEnoughData("need training curves with val_loss (none recorded)")
    iso = approaches.isoflop(groups)
    base = {"form": "per compute level: loss = c2*(log N)^2 + c1*log N + c0; N_opt = k*C^a",
            "profiles": iso.profiles, "n_levels_with_minimum": iso.n_valid}
    if iso.reason is not None:
        return {**validity.not_enough_data(iso.reason), **base}, None
    a_r, nopt_r = [], []
    if n_boot:
        # resample whole curves (trials) and redo the profiles at the same levels
        W = draw_weights(len(groups), n_boot, seed)
        for w in W:
            pick = [g for g, k in zip(groups, w) for _ in range(int(k))]
            r = approaches.isoflop(pick)
            a_r.append(r.a)
            nopt_r.append(np.exp(r.log_k) * iso.levels**r.a if np.isfinite(r.a) else
                          np.full(iso.levels.size, np.nan))
    a_s = np.array(a_r) if a_r else None
    check = validity.assess_isoflop(iso.a, iso.levels[np.isfinite(iso.N_opt)], iso.n_valid, a_s)
    out = {**check, **base}
    out["a"] = block(iso.a, a_s)
    out["k"] = float(np.exp(iso.log_k))
    if validity.usable(check):
        out["N_opt_fit"] = {"C": iso.levels.tolist(),
                            "N_opt": band(np.exp(iso.log_k) * iso.levels**iso.a,
                                          np.array(nopt_r) if nopt_r else None)}
    out["N_opt_measured"] = [None if not np.isfinite(v) else float(v) for v in iso.N_opt]
    return out, None


def best_per_d(sel):
    """The data axis of one variant: one point per train_trajectories, at one training compute.

    L(D) is asked at a fixed compute (2410.23179), so the points come from the one (N, S), a
    model size trained for one length, that was run at the most train-set sizes (ties: the
    larger compute); taking each D's best over every length would put a longer run at the
    largest D. Per D the lowest validation loss wins (fitted loss where none was recorded)."""
    d = sel[np.isfinite(sel["D"]) & (sel["D"] > 0)]
    if d.empty:
        return d
    axes = d.groupby(["N", "S"])["D"].nunique().rename("n_d").reset_index()
    axes["C"] = axes["N"] * axes["S"]
    pick = axes.sort_values(["n_d", "C"], ascending=False, kind="stable").iloc[0]
    d = d[(d["N"] == pick["N"]) & (d["S"] == pick["S"])]
    rank = np.where(np.isfinite(d["val_loss"]), d["val_loss"], d["loss"])
    d = d.assign(_rank=rank).sort_values(["_rank", "key"], kind="stable")
    return d.groupby("D", sort=True).head(1).sort_values("D")


def data_efficiency(sel, n_boot, seed, workers):
    best = best_per_d(sel)
    require_one_var(best["D"], 4, "train_trajectories")
    D, L = best["D"].to_numpy(float), best["loss"].to_numpy(float)
    res = _one_var(D, L, n_boot, seed, workers)
    check = validity.assess_law(res.fit, {"D (train trajectories)": D}, L, res.boot,
                                names={"A": "B", "gamma": "beta"})
    blocks = res.coef_blocks()
    blocks["B"] = blocks.pop("A")
    blocks["beta"] = blocks.pop("gamma")
    out = {
        **check,
        "form": ("L(D) = E + B*D^-beta, D = train_trajectories, at the (N, S) run at the most D; "
                 "best (by val loss) point per D"),
        "data": {"n_points": int(len(best)), "D": D.tolist(), "loss": L.tolist(),
                 "keys": best["key"].tolist(),
                 "epochs": [None if not np.isfinite(e) else float(e) for e in best["epochs"]]},
        "coefficients": blocks,
        "bootstrap_ok": res.boot.n_ok,
    }
    if validity.usable(check):
        Dg = np.logspace(np.log10(D.min()), np.log10(D.max()), N_GRID)
        fitted = lawfit.predict(lawfit.ONE_VAR, res.fit.theta, Dg)
        fitted_r = lawfit.predict(lawfit.ONE_VAR, res.boot.theta, Dg) if res.boot.n_ok else None
        out["curve"] = {"D": Dg.tolist(), "L": band(fitted, fitted_r)}
    return out, None
