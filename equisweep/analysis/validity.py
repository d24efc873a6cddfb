"""Is a fit determined by its data? Every fit gets a status and the reasons for it.

    status: "ok"           nothing below fired
            "weak"         a warning fired: usable, to be read with its reasons
            "undetermined" the data do not pin the law down; nothing downstream (frontier,
                           allocation, crossover, family ratio, verdict) is computed from it

Each diagnostic is {"code", "severity" ("weak" | "undetermined"), "message"}; the message
names the number that tripped it. Thresholds are the module constants, chosen so that the
Chinchilla refit (Besiroglu et al. 2024: 240 points, α ≈ 0.35, β ≈ 0.37) and planted laws
stay quiet, while the degenerate fits seen on small sweeps (α ≈ 29, E ≈ 0, A ≈ 1e89 from
nine points over half a decade) fire.
"""

from __future__ import annotations

import numpy as np

EXPONENT_RANGE = (0.02, 3.0)  # plausible scaling exponents (Chinchilla ~0.3; 2510.09768 0.14-0.4)
E_COLLAPSE = 1e-3  # E below this fraction of the smallest loss: no floor is measured
E_INTERVAL = 0.5  # E's interval wider than this fraction of the smallest loss: weak
LOG_BOUND = 100.0  # |log A| beyond this: the optimiser ran off along a flat direction
POINTS_WEAK = 3.0  # points per free parameter for an ok fit
SPARE_POINTS = 2  # below n_params + this, nothing is left to check the law against
DECADES_WEAK, DECADES_UNDETERMINED = 1.0, 0.3  # span of each covariate, log10(max/min)
BOOT_WEAK, BOOT_UNDETERMINED = 0.8, 0.5  # share of bootstrap resamples that converged
STATUSES = ("ok", "weak", "undetermined")
NOTE = "note"  # a diagnostic that informs without lowering the status
HELD_OUT_NOISE = 2.0  # held-out error above this many × the run-to-run noise: weak
# seed-to-seed variation of a final loss when the sweep has no replicates to measure it
# (Choshen et al. 2025, arXiv 2410.11840: ~3.5%); named as assumed wherever it is used
ASSUMED_RUN_NOISE = 0.035

EXPONENTS = {"alpha", "beta", "gamma", "a"}


def diag(code: str, severity: str, message: str) -> dict:
    assert severity in STATUSES[1:] + (NOTE,)
    return {"code": code, "severity": severity, "message": message}


def status_of(diagnostics: list[dict]) -> str:
    sev = {d["severity"] for d in diagnostics}
    return "undetermined" if "undetermined" in sev else "weak" if "weak" in sev else "ok"


def verdict(diagnostics: list[dict]) -> dict:
    """{"status", "diagnostics", "reason", "notes"}: reason joins the messages of the worst
    severity; notes are the diagnostics that do not lower the status."""
    st = status_of(diagnostics)
    worst = [d["message"] for d in diagnostics if d["severity"] == st]
    return {"status": st, "diagnostics": diagnostics, "reason": "; ".join(worst) or None,
            "notes": [d["message"] for d in diagnostics if d["severity"] == NOTE]}


def check_held_out(error, noise: float, noise_source: str) -> list[dict]:
    """A law whose held-out error is well above the run-to-run noise is misspecified for
    these runs (weak); within it, noise is what limits the prediction."""
    if error is None:
        return [diag("held_out", NOTE, "no held-out test possible (too few lengths or sizes)")]
    if not np.isfinite(error) or error > HELD_OUT_NOISE * noise:
        return [diag("held_out", "weak", f"held-out error {error:.3g} is above "
                     f"{HELD_OUT_NOISE:g}× the run-to-run noise {noise:.3g} ({noise_source})")]
    return []


def not_enough_data(message: str) -> dict:
    return verdict([diag("not_enough_data", "undetermined", f"not enough data: {message}")])


def check_points(n_points: int, n_params: int) -> list[dict]:
    if n_points < n_params + SPARE_POINTS:
        sev = "undetermined"
    elif n_points < POINTS_WEAK * n_params:
        sev = "weak"
    else:
        return []
    return [diag("few_points", sev, f"{n_points} points for {n_params} parameters "
                 f"(want ≥ {int(np.ceil(POINTS_WEAK * n_params))})")]


def check_span(values, name: str) -> list[dict]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        return []
    dec = float(np.log10(v.max() / v.min()))
    if dec >= DECADES_WEAK:
        return []
    sev = "undetermined" if dec < DECADES_UNDETERMINED else "weak"
    return [diag("narrow_covariate", sev, f"{name} spans {dec:.2f} decades "
                 f"({v.min():.3g} to {v.max():.3g}; want ≥ {DECADES_WEAK:g})")]


def check_exponent(name: str, value: float) -> list[dict]:
    lo, hi = EXPONENT_RANGE
    if not np.isfinite(value) or not lo <= value <= hi:
        return [diag("exponent_range", "undetermined",
                     f"{name} = {value:.3g} outside the plausible range [{lo:g}, {hi:g}]")]
    return []


def check_boot_share(n_ok: int, n_requested: int) -> list[dict]:
    if n_requested <= 0:
        return []
    share = n_ok / n_requested
    if share >= BOOT_WEAK:
        return []
    sev = "undetermined" if share < BOOT_UNDETERMINED else "weak"
    return [diag("bootstrap_failed", sev, f"only {n_ok} of {n_requested} bootstrap resamples "
                 f"converged ({share:.0%}; want ≥ {BOOT_WEAK:.0%})")]


def check_interval(name: str, value: float, samples, level: float = 0.95,
                   exponent: bool = False) -> list[dict]:
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size < 2 or not np.isfinite(value):
        return []
    q = (1 - level) / 2
    lo, hi = np.quantile(s, [q, 1 - q])
    if exponent and (lo <= 0 or hi > 2 * EXPONENT_RANGE[1]):
        # the resamples do not even agree on the sign or the scale of the exponent
        return [diag("wide_interval", "undetermined", f"{name}'s {level:.0%} interval "
                     f"[{lo:.3g}, {hi:.3g}] leaves it undetermined")]
    if hi - lo > abs(value):
        return [diag("wide_interval", "weak", f"{name}'s {level:.0%} interval [{lo:.3g}, "
                     f"{hi:.3g}] is wider than the estimate {value:.3g}")]
    return []


def check_floor_interval(samples, lmin: float, level: float = 0.95) -> list[dict]:
    """E is judged against the data's scale, not its own value: a floor known to within a
    fraction of the best loss is determined even when it is small (E ≪ L, as in MSE tasks
    where models are far from the noise floor); E collapsing to zero is its own check."""
    s = np.asarray(samples, dtype=float)
    s = s[np.isfinite(s)]
    if s.size < 2:
        return []
    q = (1 - level) / 2
    lo, hi = np.quantile(s, [q, 1 - q])
    if hi - lo > E_INTERVAL * lmin:
        return [diag("wide_interval", "weak", f"E's {level:.0%} interval [{lo:.3g}, {hi:.3g}] "
                     f"is wider than {E_INTERVAL:g}× the smallest loss {lmin:.3g}")]
    return []


def assess_law(fit, covariates: dict, loss, boot=None, names: dict | None = None,
               floor_free_as_good: bool = False, held_out=None) -> dict:
    """Diagnostics of a lawfit.LawFit (Approach 1 and 3, data efficiency, `equisweep fit`).

    covariates: {label: values} in the form's covariate order; names renames coefficients
    in messages (data efficiency calls A, γ of the one-variable form B, β).
    floor_free_as_good: a form without E predicts held-out runs as well as this one, so a
    collapsed E is a note (no floor in the measured range), not a reason to be weak.
    held_out: (error, run-to-run noise, where the noise comes from) for check_held_out."""
    names = names or {}
    nm = lambda k: names.get(k, k)  # noqa: E731
    form = fit.form
    L = np.asarray(loss, dtype=float)
    out = check_points(L.size, len(form.params))
    for label, values in covariates.items():
        out += check_span(values, label)
    c = fit.coefs
    for k in ("alpha", "beta", "gamma"):
        if k in c:
            out += check_exponent(nm(k), c[k])
    lmin = float(np.min(L))
    if "E" not in c:
        pass
    elif c["E"] < E_COLLAPSE * lmin:
        if floor_free_as_good:
            out.append(diag("E_zero", NOTE, f"E = {c['E']:.3g} collapsed to zero: no floor in "
                            "the measured range (a form without E predicts held-out runs as "
                            "well)"))
        else:
            out.append(diag("E_zero", "weak", f"E = {c['E']:.3g} collapsed to zero (no loss "
                            f"floor measured; smallest loss {lmin:.3g})"))
    elif c["E"] > lmin:
        out.append(diag("E_above_min", "weak", f"E = {c['E']:.3g} is above the smallest "
                        f"measured loss {lmin:.3g}"))
    raw = dict(zip(form.params, fit.theta))
    for k, v in raw.items():
        if k in EXPONENTS or (k == "e" and v < 0):
            # e → −∞ is E → 0, a law without a floor: the E_zero check above reports it
            continue
        if not np.isfinite(v) or abs(v) > LOG_BOUND:
            user = {"a": "A", "b": "B", "e": "E"}[k]
            out.append(diag("numeric_bound", "undetermined", f"{nm(user)} = e^{v:.3g} at a numeric "
                            "bound (the objective is flat in that direction)"))
    if fit.starts is not None and len(fit.starts):
        for i, k in enumerate(form.params):
            if k not in EXPONENTS:
                continue
            lo, hi = float(np.min(fit.starts[:, i])), float(np.max(fit.starts[:, i]))
            if not lo <= raw[k] <= hi and not check_exponent(k, raw[k]):
                out.append(diag("grid_bound", "weak", f"{nm(k)} = {raw[k]:.3g} lies outside "
                                f"the start grid [{lo:g}, {hi:g}]: the grid did not bracket it"))
    if not fit.converged:
        out.append(diag("not_converged", "weak", "the best start stopped at the optimiser's "
                        "iteration limit"))
    if boot is not None:
        out += check_boot_share(boot.n_ok, boot.n_requested)
        if boot.n_ok >= 2:
            reps = form.named(boot.theta)
            for k in ("alpha", "beta", "gamma"):
                if k in c:
                    out += check_interval(nm(k), c[k], reps[k], exponent=True)
            if "E" in reps:
                out += check_floor_interval(reps["E"], lmin)
    if held_out is not None:
        out += check_held_out(*held_out)
    return verdict(out)


def assess_isoflop(a: float, levels, n_valid: int, a_samples=None) -> dict:
    """Approach 2: the exponent of N_opt ∝ C^a from the IsoFLOP minima."""
    out = []
    if n_valid < 3:
        out.append(diag("few_points", "weak", f"N_opt ∝ C^a rests on {n_valid} compute levels "
                        "with a bracketed minimum (a line through two points has no check)"))
    out += check_span(levels, "the compute levels with a minimum")
    out += check_exponent("a", a)
    if a_samples is not None and np.size(a_samples):
        s = np.asarray(a_samples, dtype=float)
        out += check_boot_share(int(np.isfinite(s).sum()), int(s.size))
        out += check_interval("a", a, s, exponent=True)
    return verdict(out)


def usable(block: dict | None) -> bool:
    """Whether downstream results may be computed from a fit block."""
    return isinstance(block, dict) and block.get("status") in ("ok", "weak")
