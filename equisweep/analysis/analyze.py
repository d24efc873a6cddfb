"""`equisweep analyze`: every fit of DESIGN §8 for every model variant of a sweep.

A variant is a family with its augmentation setting ("transformer+aug"), because the study
compares the equivariant model with the baseline trained with and without augmentation.

Choices (reported in fits.json next to each result):
- Approach 3 fits L(N, S) = E + A/N^α + B/S^β with S = training steps, on the final test loss
  of the trials at the variant's largest train_trajectories (the least data-limited ones).
- FLOPs per step F(N) is fitted over the variant's trials (frontier.fit_flops), so each
  family's compute-optimal allocation uses its own FLOP formula.
- Approach 1 and Approach 2 read the validation-loss curves (test loss exists at the end only).
- Data efficiency fits L(D) = E + B·D^−β to the best final loss at each train_trajectories.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from equisweep.analysis import approaches, frontier, lawfit
from equisweep.analysis.bootstrap import CI_LEVEL, draw_weights
from equisweep.analysis.data import SweepData, load_sweep
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
CROSSOVER_EXTRAPOLATE = 1e4  # also look this far past the measured compute, flagged


@dataclass
class AnalysisResult:
    fits: dict
    summary: str
    out_dir: Path | None = None
    files: list[str] = field(default_factory=list)


def analyze_store(store_uri, name, out, *, n_boot=200, seed=0, workers=None, png=True,
                  progress=False) -> AnalysisResult:
    from equisweep.store import open_store

    store = open_store(store_uri, must_exist=True)
    data = load_sweep(store, name)
    fits = analyze_data(data, n_boot=n_boot, seed=seed, workers=workers, progress=progress)
    fits["store"] = str(store_uri)
    from equisweep.analysis import report

    html, pngs, png_note = report.render(data, fits, png=png)
    files = write_outputs(Path(out), fits, html, pngs)
    summary = summary_table(fits, files, png_note)
    return AnalysisResult(fits=fits, summary=summary, out_dir=Path(out), files=files)


def write_outputs(out: Path, fits: dict, html: str, pngs: dict[str, bytes]) -> list[str]:
    """Write everything to temporary names first, then rename: no half-written report."""
    from equisweep.errors import UserError

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create folder ({err.strerror})") from err
    payload = {"fits.json": json.dumps(fits, indent=2, allow_nan=False).encode(),
               "report.html": html.encode()}
    payload.update({f"{k}.png": v for k, v in pngs.items()})
    staged = []
    umask = os.umask(0)
    os.umask(umask)
    try:
        for fname, blob in payload.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".tmp", dir=out)
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are ordinary files
            staged.append((tmp, out / fname))
    except OSError as err:
        for tmp, _ in staged:
            os.unlink(tmp)
        raise UserError(f"--out {out}: cannot write ({err.strerror})") from err
    for tmp, final in staged:
        os.replace(tmp, final)
    return [str(final) for _, final in staged]


def analyze_data(data: SweepData, *, n_boot=200, seed=0, workers=None, progress=False) -> dict:
    fits = {
        "sweep": data.name,
        "ci_level": CI_LEVEL,
        "bootstrap": n_boot,
        "seed": seed,
        "huber_delta": lawfit.HUBER_DELTA,
        "notes": list(data.notes),
        "n_trials": int(len(data.final)),
        "variants": {},
        "comparisons": [],
    }
    reps = {}
    for i, (variant, sel) in enumerate(sorted(data.final.groupby("variant"), key=lambda t: t[0])):
        curves = data.curves[data.curves["variant"] == variant]
        ss = [seed, i]
        v, r = _variant(variant, sel, curves, n_boot, ss, workers, progress)
        fits["variants"][variant] = v
        reps[variant] = r
    names = [k for k in fits["variants"] if reps[k] is not None]
    for a, b in itertools.combinations(names, 2):
        fits["comparisons"].append(compare(a, b, fits["variants"], reps))
    return fits


def _section(fn, *args, **kw):
    try:
        return fn(*args, **kw)
    except NotEnoughData as err:
        return {"status": "not enough data", "reason": f"not enough data: {err}"}, None
    except (FloatingPointError, np.linalg.LinAlgError) as err:
        return {"status": "failed", "reason": f"fit failed: {err}"}, None


def _variant(variant, sel, curves, n_boot, seed, workers, progress):
    C = sel["C"].to_numpy()
    out = {
        "family": str(sel["family"].iloc[0]),
        "augment": bool(sel["augment"].iloc[0]),
        "n_trials": int(len(sel)),
        "sizes": sorted(float(x) for x in np.unique(sel["N"])),
        "steps": sorted(float(x) for x in np.unique(sel["S"])),
        "train_trajectories": sorted(float(x) for x in np.unique(sel["D"][np.isfinite(sel["D"])])),
        "compute_range": [float(C.min()), float(C.max())],
    }
    fm = frontier.fit_flops(sel["N"], sel["F"])
    out["flops_model"] = fm.to_json()
    out["approach3"], rep3 = _section(_approach3, sel, fm, n_boot, seed, workers, progress)
    # each fit draws its own resamples (same seed, distinct stream)
    out["approach1"], _ = _section(_approach1, curves, n_boot, seed + [1], workers)
    out["approach2"], _ = _section(_approach2, curves, n_boot, seed + [2])
    out["data_efficiency"], _ = _section(_data_efficiency, sel, n_boot, seed + [3], workers)
    return out, rep3


def _c_grid(lo, hi, n=N_GRID):
    if hi <= lo:
        hi = lo * 10
    return np.logspace(np.log10(lo), np.log10(hi), n)


def _approach3(sel, fm, n_boot, seed, workers, progress):
    dmax = np.nanmax(sel["D"]) if np.isfinite(sel["D"]).any() else np.nan
    sub = sel[sel["D"] == dmax] if np.isfinite(dmax) else sel
    N, S, L = (sub[c].to_numpy(float) for c in ("N", "S", "loss"))
    require_two_var(N, S, names=("N (model sizes)", "S (step counts)"))
    starts = grid_starts(lawfit.TWO_VAR, (N, S), L, grid="adaptive")
    res = fit_with_ci(lawfit.TWO_VAR, (N, S), L, n_boot=n_boot, seed=seed, starts=starts,
                      workers=workers, progress=progress)
    samples = res.samples()
    Cg = _c_grid(float(sel["C"].min()), float(sel["C"].max()))
    alloc = frontier.allocation(res.fit.coefs, fm, Cg)
    alloc_r = frontier.allocation(samples, fm, Cg) if res.boot.n_ok else None
    p = fm.p if fm.kind == "power" else float(np.polyfit(fm.log_n, fm.log_f, 1)[0])
    ex = frontier.exponents(res.fit.coefs, p)
    ex_r = frontier.exponents(samples, p) if res.boot.n_ok else {}
    block3 = {
        "status": "ok",
        "form": "L(N, S) = E + A/N^alpha + B/S^beta",
        "covariates": {"N": "n_params", "S": "steps"},
        "data": {
            "selection": f"final {'/'.join(sorted(set(sub['loss_kind'])))} loss of the trials "
                         f"with train_trajectories = {dmax:g}" if np.isfinite(dmax)
                         else "final loss of all trials",
            "n_points": int(L.size),
            "keys": sub["key"].tolist(),
            "N": N.tolist(), "S": S.tolist(), "loss": L.tolist(),
        },
        "coefficients": res.coef_blocks(),
        "objective": res.fit.objective,
        "n_starts": res.fit.n_starts,
        "bootstrap_ok": res.boot.n_ok,
        "exponents": {
            "N_opt ~ C^a": block(ex["a_N"], ex_r.get("a_N")),
            "S_opt ~ C^b": block(ex["b_S"], ex_r.get("b_S")),
            "L* - E ~ C^-gamma": block(ex["gamma_L"], ex_r.get("gamma_L")),
            "flops_exponent_p": p,
        },
        "allocation_method": "closed_form" if fm.kind == "power" else "numerical",
        "frontier": {
            "C": Cg.tolist(),
            **{k: band(alloc[k], None if alloc_r is None else alloc_r[k])
               for k in ("N_opt", "S_opt", "L_opt")},
        },
    }
    reps = {"coefs": res.fit.coefs, "samples": samples, "flops": fm,
            "range": (float(sel["C"].min()), float(sel["C"].max()))}
    return block3, reps


def _one_var(x, y, n_boot, seed, workers, groups=None):
    x, y = np.asarray(x, float), np.asarray(y, float)
    starts = grid_starts(lawfit.ONE_VAR, (x,), y)
    res = fit_with_ci(lawfit.ONE_VAR, (x,), y, n_boot=n_boot, seed=seed, starts=starts,
                      workers=workers, groups=groups)
    return res


def _approach1(curves, n_boot, seed, workers):
    cv = curves[np.isfinite(curves["val_loss"]) & (curves["val_loss"] > 0) & (curves["C"] > 0)]
    if cv.empty:
        raise NotEnoughData("need training curves with val_loss (none recorded)")
    c, l = approaches.envelope(cv["C"], cv["val_loss"])
    require_one_var(c, 4, "envelope points (compute bins where some curve sets a new best)")
    res = _one_var(c, l, n_boot, seed, workers)
    Cg = _c_grid(float(c.min()), float(c.max()))
    fitted = lawfit.predict(lawfit.ONE_VAR, res.fit.theta, Cg)
    fitted_r = lawfit.predict(lawfit.ONE_VAR, res.boot.theta, Cg) if res.boot.n_ok else None
    blocks = res.coef_blocks()
    return {
        "status": "ok",
        "form": "L(C) = E + A*C^-gamma on the lower envelope of val_loss vs cumulative FLOPs",
        "data": {"n_points": int(c.size), "C": c.tolist(), "loss": l.tolist(),
                 "n_curves": int(cv["key"].nunique())},
        "coefficients": blocks,
        "bootstrap_ok": res.boot.n_ok,
        "resampling": "envelope points",
        "curve": {"C": Cg.tolist(), "L": band(fitted, fitted_r)},
    }, None


def _approach2(curves, n_boot, seed):
    cv = curves[np.isfinite(curves["val_loss"]) & (curves["val_loss"] > 0) & (curves["C"] > 0)]
    groups = [(float(g["N"].iloc[0]), g["C"].to_numpy(float), g["val_loss"].to_numpy(float))
              for _, g in cv.groupby("key")]
    if not groups:
        raise NotEnoughData("need training curves with val_loss (none recorded)")
    iso = approaches.isoflop(groups)
    out = {
        "status": "ok" if iso.reason is None else "not enough data",
        "form": "per compute level: loss = c2*(log N)^2 + c1*log N + c0; N_opt = k*C^a",
        "profiles": iso.profiles,
        "n_levels_with_minimum": iso.n_valid,
    }
    if iso.reason is not None:
        out["reason"] = f"not enough data: {iso.reason}"
        return out, None
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
    out["a"] = block(iso.a, np.array(a_r) if a_r else None)
    out["k"] = float(np.exp(iso.log_k))
    out["N_opt_fit"] = {"C": iso.levels.tolist(),
                        "N_opt": band(np.exp(iso.log_k) * iso.levels**iso.a,
                                      np.array(nopt_r) if nopt_r else None)}
    out["N_opt_measured"] = [None if not np.isfinite(v) else float(v) for v in iso.N_opt]
    return out, None


def _data_efficiency(sel, n_boot, seed, workers):
    d = sel[np.isfinite(sel["D"]) & (sel["D"] > 0)]
    best = d.loc[d.groupby("D")["loss"].idxmin()].sort_values("D")
    require_one_var(best["D"], 4, "train_trajectories")
    res = _one_var(best["D"], best["loss"], n_boot, seed, workers)
    Dg = np.logspace(np.log10(best["D"].min()), np.log10(best["D"].max()), N_GRID)
    fitted = lawfit.predict(lawfit.ONE_VAR, res.fit.theta, Dg)
    fitted_r = lawfit.predict(lawfit.ONE_VAR, res.boot.theta, Dg) if res.boot.n_ok else None
    blocks = res.coef_blocks()
    blocks["B"] = blocks.pop("A")
    blocks["beta"] = blocks.pop("gamma")
    return {
        "status": "ok",
        "form": "L(D) = E + B*D^-beta, D = train_trajectories, best final loss per D",
        "data": {"n_points": int(len(best)), "D": best["D"].tolist(),
                 "loss": best["loss"].tolist(), "keys": best["key"].tolist(),
                 "epochs": [None if not np.isfinite(e) else float(e) for e in best["epochs"]]},
        "coefficients": blocks,
        "bootstrap_ok": res.boot.n_ok,
        "curve": {"D": Dg.tolist(), "L": band(fitted, fitted_r)},
    }, None


# -- family comparison ------------------------------------------------------------------


def compare(a: str, b: str, variants: dict, reps: dict) -> dict:
    ra, rb = reps[a], reps[b]
    lo = max(ra["range"][0], rb["range"][0])
    hi = min(ra["range"][1], rb["range"][1])
    overlap = hi > lo
    if not overlap:
        lo, hi = min(ra["range"][0], rb["range"][0]), max(ra["range"][1], rb["range"][1])
    Cg = _c_grid(lo, hi)
    la = frontier.allocation(ra["coefs"], ra["flops"], Cg)["L_opt"]
    lb = frontier.allocation(rb["coefs"], rb["flops"], Cg)["L_opt"]
    n = min(len(ra["samples"]["E"]), len(rb["samples"]["E"]))
    ratio_r = None
    if n >= 2:
        sa = {k: v[:n] for k, v in ra["samples"].items()}
        sb = {k: v[:n] for k, v in rb["samples"].items()}
        ratio_r = (frontier.allocation(sa, ra["flops"], Cg)["L_opt"]
                   / frontier.allocation(sb, rb["flops"], Cg)["L_opt"])
    out = {
        "pair": [a, b],
        "ratio_definition": f"L*_{a}(C) / L*_{b}(C) (below 1: {a} reaches lower loss)",
        "compute_range": [lo, hi],
        "range_kind": "overlap of measured compute" if overlap
        else "union of measured compute (ranges do not overlap: partly extrapolated)",
        "C": Cg.tolist(),
        "ratio": band(la / lb, ratio_r),
    }
    out["crossover"] = crossover(ra, rb, lo, hi, n)
    return out


def crossover(ra, rb, lo, hi, n) -> dict:
    """Where L*_a(C) = L*_b(C): within the measured range, else up to CROSSOVER_EXTRAPOLATE
    times its top (flagged as an extrapolation), with its bootstrap interval."""
    far = hi * CROSSOVER_EXTRAPOLATE
    Cg = np.logspace(np.log10(lo), np.log10(far), 400)

    def root(ca, cb):
        d = np.log(frontier.allocation(ca, ra["flops"], Cg)["L_opt"]) - np.log(
            frontier.allocation(cb, rb["flops"], Cg)["L_opt"])
        d = np.atleast_2d(d)
        out = np.full(d.shape[0], np.nan)
        for i, row in enumerate(d):
            s = np.flatnonzero(np.isfinite(row[:-1]) & np.isfinite(row[1:])
                               & (np.sign(row[:-1]) * np.sign(row[1:]) < 0))
            if s.size:
                j = s[0]
                x0, x1 = np.log(Cg[j]), np.log(Cg[j + 1])
                out[i] = np.exp(x0 - row[j] * (x1 - x0) / (row[j + 1] - row[j]))
        return out

    c0 = float(root(ra["coefs"], rb["coefs"])[0])
    res = {"search_range": [lo, far], "measured_top": hi}
    if n >= 2:
        sa = {k: v[:n] for k, v in ra["samples"].items()}
        sb = {k: v[:n] for k, v in rb["samples"].items()}
        r = root(sa, sb)
        res["fraction_of_resamples_crossing"] = float(np.mean(np.isfinite(r)))
        if np.isfinite(r).sum() >= 2:
            q = (1 - CI_LEVEL) / 2
            res["ci"] = [float(v) for v in np.quantile(r[np.isfinite(r)], [q, 1 - q])]
    if np.isfinite(c0):
        res["C"] = c0
        res["extrapolated"] = bool(c0 > hi)
        where = ("beyond the measured range (extrapolation)" if c0 > hi
                 else "within the measured range")
        res["statement"] = f"the frontiers cross at C ≈ {c0:.3g} FLOPs, {where}"
    else:
        res["C"] = None
        res["statement"] = (f"no crossover between {lo:.3g} and {far:.3g} FLOPs (the measured "
                            f"range and {CROSSOVER_EXTRAPOLATE:.0e}x beyond it)")
    return res


# -- summary ----------------------------------------------------------------------------


def _fmt(b):
    if not isinstance(b, dict) or b.get("value") is None:
        return "-"
    s = f"{b['value']:.4g}"
    if b.get("se") is not None:
        s += f" ± {b['se']:.2g}"
    return s


def summary_table(fits: dict, files: list[str], png_note: str) -> str:
    lines = [f"sweep {fits['sweep']}: {fits['n_trials']} finished trials, "
             f"{fits['bootstrap']} bootstrap resamples (seed {fits['seed']})"]
    for note in fits["notes"]:
        lines.append(f"  note: {note}")
    head = f"{'variant':<18} {'trials':>6} {'alpha':>16} {'beta':>16} {'E':>18} {'N_opt~C^a':>16}"
    lines += ["", head, "-" * len(head)]
    for name, v in fits["variants"].items():
        a3 = v["approach3"]
        if a3.get("status") == "ok":
            c = a3["coefficients"]
            a = a3["exponents"]["N_opt ~ C^a"]
            lines.append(f"{name:<18} {v['n_trials']:>6} {_fmt(c['alpha']):>16} "
                         f"{_fmt(c['beta']):>16} {_fmt(c['E']):>18} {_fmt(a):>16}")
        else:
            lines.append(f"{name:<18} {v['n_trials']:>6}  approach 3: {a3['reason']}")
        for key, label, coef in (("approach1", "approach 1 (envelope)", "gamma"),
                                 ("approach2", "approach 2 (IsoFLOP)", None),
                                 ("data_efficiency", "data efficiency", "beta")):
            s = v[key]
            if s.get("status") != "ok":
                lines.append(f"{'':<18} {label}: {s.get('reason')}")
            elif coef:
                lines.append(f"{'':<18} {label}: {coef} = {_fmt(s['coefficients'][coef])}")
            else:
                lines.append(f"{'':<18} {label}: N_opt ~ C^a, a = {_fmt(s['a'])}")
    for comp in fits["comparisons"]:
        r = [x for x in comp["ratio"]["value"] if x is not None]
        if r:
            lines.append(f"\n{comp['pair'][0]} / {comp['pair'][1]} compute-optimal loss ratio: "
                         f"{min(r):.3g} .. {max(r):.3g} over {comp['compute_range'][0]:.3g}.."
                         f"{comp['compute_range'][1]:.3g} FLOPs")
        lines.append(f"  crossover: {comp['crossover']['statement']}")
    lines.append("")
    lines += [f"wrote {f}" for f in files if not f.endswith(".png")]
    lines.append(png_note)
    return "\n".join(lines)
