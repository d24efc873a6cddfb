"""The fits of one variant (DESIGN §8), each a JSON block for fits.json with its validity.

Every block has "status" (ok | weak | undetermined), "diagnostics" and "reason" (see
validity.py). Derived results (the compute-optimal frontier, allocation, exponents of
N_opt(C)) are computed only from ok/weak fits; an undetermined block keeps its fitted
coefficients for inspection and says "not determined" instead of a frontier.

Choices (reported in the blocks):
- Approach 3 fits every law form of laws/ (L(N, S), S = training steps) on the final test
  loss of the points at the variant's largest train_trajectories (the least data-limited
  ones) and reports the one that predicts held-out runs best (heldout.py) as primary.
- Approach 1 and Approach 2 read the validation-loss curves of the same points (test loss
  exists at the end only).
- Data efficiency fits L(D) = E + B·D^−β to one point per train_trajectories: the point with
  the lowest validation loss at that D (its test loss is fitted).
"""

from __future__ import annotations

import numpy as np

from equisweep.analysis import approaches, frontier, heldout, lawfit, laws, validity
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
DEFAULT_FORM = "additive"  # when no form can be judged out of sample


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


def approach3(sel, fm, n_boot, seed, workers, progress, unit="FLOPs", noise=None):
    """Every law form of laws/ fitted to the variant's (N, S, loss) points, each judged on
    held-out runs (heldout.py); the primary form, the one that predicts best, gives the
    block's status, coefficients, exponents and frontier; every form's block is kept."""
    from equisweep.analysis.noise import source

    noise = noise or {"log_sd": validity.ASSUMED_RUN_NOISE, "measured": False}
    dmax = np.nanmax(sel["D"]) if np.isfinite(sel["D"]).any() else np.nan
    sub = sel[sel["D"] == dmax] if np.isfinite(dmax) else sel
    N, S, L = (sub[c].to_numpy(float) for c in ("N", "S", "loss"))
    clusters = sub["cluster"].to_numpy() if "cluster" in sub.columns else None
    require_two_var(N, S, names=("N (model sizes)", "S (step counts)"))
    fits, held = {}, {}
    for j, (name, form) in enumerate(laws.FORMS.items()):
        fits[name] = fit_with_ci(form, (N, S), L, n_boot=n_boot, seed=list(seed) + [10 + j],
                                 workers=workers, progress=progress, groups=clusters)
        held[name] = heldout.held_out(form, N, S, L)
    errors = {k: h["error"] for k, h in held.items()}
    primary, why = heldout.choose(errors, {k: f.n_params for k, f in laws.FORMS.items()})
    if primary is None:
        primary, why = DEFAULT_FORM, why + f"; the {DEFAULT_FORM} form is used"
    free = [e for k, e in errors.items() if not laws.FORMS[k].has_floor and e is not None]
    forms = {}
    for name, res in fits.items():
        e = errors[name]
        check = validity.assess_law(
            res.fit, {"N (parameters)": N, "S (steps)": S}, L, res.boot,
            floor_free_as_good=bool(free) and e is not None and min(free) <= e + heldout.TIE,
            held_out=(e, noise["log_sd"], source(noise)))
        forms[name] = {
            **check,
            "form": laws.FORMS[name].formula,
            "source": laws.FORMS[name].source,
            "n_params": laws.FORMS[name].n_params,
            "held_out": held[name],
            "coefficients": res.coef_blocks(),
            "objective": res.fit.objective,
            "n_starts": res.fit.n_starts,
            "bootstrap_ok": res.boot.n_ok,
        }
    res = fits[primary]
    out = {
        **{k: forms[primary][k] for k in ("status", "diagnostics", "reason", "notes")},
        "primary_form": primary,
        "selection": {"rule": "lowest held-out error (mean of the leave-longest-length-out and "
                              "leave-each-interior-size-out errors); forms within "
                              f"{heldout.TIE} tie and the one with fewer parameters wins",
                      "why": why, "held_out_error": errors},
        "form": forms[primary]["form"],
        "covariates": {"N": "n_params", "S": "steps"},
        "data": {
            "selection": f"final {'/'.join(sorted(set(sub['loss_kind'])))} loss of the points "
                         f"with train_trajectories = {dmax:g}" if np.isfinite(dmax)
                         else "final loss of all points",
            "n_points": int(L.size),
            "keys": sub["key"].tolist(),
            "N": N.tolist(), "S": S.tolist(), "loss": L.tolist(),
        },
        "resampling": ("bootstrap clustered by WSD trunk (all lengths of one run drawn "
                       "together)" if clusters is not None else "bootstrap over points"),
        "coefficients": forms[primary]["coefficients"],
        "forms": forms,
    }
    if not validity.usable(forms[primary]):
        out["frontier"] = None
        out["not_determined"] = f"no compute-optimal frontier: {forms[primary]['reason']}"
        return out, None
    form = laws.FORMS[primary]
    samples = res.samples()
    Cg = c_grid(float(sel["C"].min()), float(sel["C"].max()))
    alloc = frontier.allocation_form(form, res.fit.theta, fm, Cg)
    alloc_r = frontier.allocation_form(form, res.boot.theta, fm, Cg) if res.boot.n_ok else None
    ex = frontier.exponents(res.fit.coefs, fm.p)
    ex_r = frontier.exponents(samples, fm.p) if res.boot.n_ok else {}
    out["exponents"] = {
        "alpha": block(res.fit.coefs["alpha"], samples.get("alpha")),
        "beta": block(res.fit.coefs["beta"], samples.get("beta")),
        "alpha/beta": block(ex["alpha/beta"], ex_r.get("alpha/beta")),
        "N_opt ~ C^a": block(ex["a_N"], ex_r.get("a_N")),
        "S_opt ~ C^b": block(ex["b_S"], ex_r.get("b_S")),
        "L* - E ~ C^-gamma": block(ex["gamma_L"], ex_r.get("gamma_L")),
        "flops_exponent_p": fm.p,
    }
    out["allocation_method"] = "numerical (grid + golden section on the primary form)"
    out["frontier"] = {
        "C": Cg.tolist(), "unit": unit,
        **{k: band(alloc[k], None if alloc_r is None else alloc_r[k])
           for k in ("N_opt", "S_opt", "L_opt")},
    }
    reps = {"form": form, "theta": res.fit.theta, "boot_theta": res.boot.theta, "flops": fm,
            "a_samples": ex_r.get("a_N"), "a": ex["a_N"],
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
    largest D. Per D the lowest validation loss wins (fitted loss where none was recorded)
    among the points of one seed, the lowest seed run at that D: seeds are not candidates to
    choose from (the better of two seeds is biased low, and only at the D that have two);
    the other seeds measure the run-to-run noise (`noise.py`) that the verdict's intervals
    include."""
    d = sel[np.isfinite(sel["D"]) & (sel["D"] > 0)]
    if d.empty:
        return d
    if "seed" in d.columns:
        seed = d["seed"].fillna(-1)
        d = d[seed == seed.groupby([d["N"], d["S"], d["D"]]).transform("min")]
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
