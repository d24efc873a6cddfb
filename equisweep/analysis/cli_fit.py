"""`equisweep fit`: fit a law L(N, D) to any CSV table: by default E + A/N^α + B/D^β
(Approach 3 of Hoffmann et al. 2022 with the Huber/log-sum-exp/L-BFGS-grid recipe of
Besiroglu et al. 2024), or any form of analysis/laws/ with --form NAME.

Example (Epoch AI's extraction of the Chinchilla points):

    equisweep fit --csv chinchilla_svg_extracted.csv --n "Model Size" \\
        --compute "Training FLOP" --loss loss --drop-highest 5 --json
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "D is the second covariate (tokens, samples or steps). With --compute, "
        "D = C / (flops_per_param * N). Standard errors and 95% intervals come from a "
        "bootstrap over rows (resampled with replacement, seeded, in parallel processes). "
        "The fit's status (ok, weak, undetermined) and its reasons are printed with it."
    )
    parser.add_argument("--csv", required=True, metavar="FILE", help="input table (CSV)")
    parser.add_argument("--n", required=True, metavar="COL", help="column of model sizes N")
    g = parser.add_mutually_exclusive_group(required=True)
    g.add_argument("--d", metavar="COL", help="column of data sizes D (tokens, samples)")
    g.add_argument("--s", metavar="COL", help="column of training steps S (used as D)")
    g.add_argument("--compute", metavar="COL", help="column of training FLOPs C")
    parser.add_argument("--flops-per-param", type=float, default=6.0, metavar="K",
                        help="with --compute: D = C / (K*N) (default 6)")
    parser.add_argument("--loss", required=True, metavar="COL", help="column of losses")
    parser.add_argument("--drop-highest", type=int, default=0, metavar="K",
                        help="drop the K highest-loss rows first (Besiroglu et al. drop 5)")
    parser.add_argument("--form", default="additive", metavar="NAME", help=_FormsHelp(
        "law form (default additive): %(forms)s"))
    parser.add_argument("--grid", choices=("besiroglu", "adaptive"), default="besiroglu",
                        help="start grid of the additive form: the 4,500 starts of Besiroglu "
                             "et al. (default) or one scaled to the data (for losses far from "
                             "~1-5); other forms use their own grid scaled to the data")
    parser.add_argument("--starts", type=int, default=None, metavar="N",
                        help="use a seeded random subset of N starts from the grid")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="N",
                        help="bootstrap resamples for standard errors (default 200; 0: none)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--workers", type=int, default=None,
                        help="bootstrap processes (default: all cores for large jobs)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


class _FormsHelp(str):
    """--form's help, listing the registered forms only when --help is printed: the registry
    imports numpy, and building the CLI parser must stay stdlib-only (argparse fills a help
    string with `help % params` at print time)."""

    def __mod__(self, params):
        forms = "; ".join(f"{k}: {v}" for k, v in _form_help().items())
        return str.__mod__(str(self), {**params, "forms": forms})


def _form_help() -> dict[str, str]:
    from equisweep.analysis.laws import FORMS

    return {k: f.formula.replace("L(N, S)", "L(N, D)").replace("S_c/S", "D_c/D")
            .replace("/S^", "/D^") for k, f in FORMS.items()}


def run(args) -> int:
    import time

    import numpy as np

    from equisweep.analysis import lawfit, validity
    from equisweep.analysis.data import load_table
    from equisweep.analysis.scaling import NotEnoughData, fit_with_ci, grid_starts, require_two_var
    from equisweep.errors import UserError

    t0 = time.perf_counter()
    from equisweep.analysis import laws

    form = laws.get(args.form)  # an unknown name is a one-line error before any work
    if args.drop_highest < 0:
        raise UserError("--drop-highest must be ≥ 0")
    if args.starts is not None and args.starts < 1:
        raise UserError("--starts must be ≥ 1")
    if args.bootstrap < 0:
        raise UserError("--bootstrap must be ≥ 0")
    if args.compute and not args.flops_per_param > 0:
        raise UserError("--flops-per-param must be > 0")
    second = args.d or args.s or args.compute
    role = "compute" if args.compute else "D"
    df = load_table(args.csv, {"N": args.n, role: second, "L": args.loss})
    flag_of_second = "--" + ("compute" if args.compute else "d" if args.d else "s")
    for r, col, flag in (("N", args.n, "--n"), (role, second, flag_of_second),
                         ("L", args.loss, "--loss")):
        infinite = int((~np.isfinite(df[r].to_numpy())).sum())
        if infinite:
            raise UserError(f"--csv {args.csv}: {flag} column {col!r} has {infinite} infinite "
                            "value(s); a scaling law needs finite values (remove those rows)")
        bad = int((~(df[r] > 0)).sum())
        if bad:
            raise UserError(f"--csv {args.csv}: {flag} column {col!r} has {bad} non-positive "
                            "value(s); a scaling law needs positive values")
    if args.drop_highest >= len(df):
        raise UserError(f"--csv {args.csv}: --drop-highest {args.drop_highest} leaves no rows "
                        f"(the table has {len(df)})")
    if args.drop_highest:
        df = df.sort_values("L", kind="stable").iloc[: len(df) - args.drop_highest]
    N = df["N"].to_numpy()
    if args.compute:
        D = df["compute"].to_numpy() / (args.flops_per_param * N)
    else:
        D = df["D"].to_numpy()
    L = df["L"].to_numpy()
    try:
        require_two_var(N, D, names=("N (--n)", f"{second!r} ({flag_of_second})"))
    except NotEnoughData as err:
        raise UserError(f"not enough data: {err}") from None
    if form.name == "additive":
        starts = grid_starts(lawfit.TWO_VAR, (N, D), L, grid=args.grid, n_starts=args.starts,
                             seed=args.seed)
    else:
        starts = form.starts(np.log(np.vstack([N, D])), np.log(L))
        if args.starts is not None and 0 < args.starts < len(starts):
            pick = np.random.default_rng(args.seed).choice(len(starts), args.starts, False)
            starts = starts[np.sort(pick)]
    res = fit_with_ci(form, (N, D), L, n_boot=args.bootstrap, seed=args.seed,
                      starts=starts, workers=args.workers, progress=not args.json)
    blocks = res.coef_blocks()
    check = validity.assess_law(res.fit, {"N": N, "D": D}, L, res.boot)
    out = {"form": form.name, "formula": _form_help()[form.name], "status": check["status"],
           "diagnostics": check["diagnostics"]}
    coefs = tuple(blocks)
    for k in coefs:
        out[k] = blocks[k]["value"]
        out[f"{k}_se"] = blocks[k]["se"]
        out[f"{k}_ci"] = blocks[k]["ci"]
    out.update(
        n_points=int(L.size), n_starts=int(len(starts)), grid=args.grid,
        objective=res.fit.objective, bootstrap=res.boot.n_requested,
        bootstrap_ok=res.boot.n_ok, seed=args.seed, seconds=time.perf_counter() - t0,
        fit_seconds=res.fit.seconds, bootstrap_seconds=res.boot.seconds,
    )
    if args.json:
        from equisweep.analysis import strict_json

        print(strict_json.dumps(out))
        return 0
    print(f"{out['formula']}   ({out['n_points']} points, "
          f"{out['n_starts']} starts, {res.boot.n_ok}/{args.bootstrap} bootstrap fits, "
          f"{out['seconds']:.1f} s)")
    print(f"{'coef':>6} {'value':>12} {'se':>12}   95% interval")
    for k in coefs:
        se = "-" if out[f"{k}_se"] is None else f"{out[f'{k}_se']:.4g}"
        lo_hi = out[f"{k}_ci"]
        ci = "-" if lo_hi is None else f"[{lo_hi[0]:.4g}, {lo_hi[1]:.4g}]"
        print(f"{k:>6} {out[k]:>12.6g} {se:>12}   {ci}")
    print(f"status: {check['status']}")
    for d in check["diagnostics"]:
        print(f"  {d['severity']}: {d['message']}")
    if not np.isfinite(out["objective"]):
        print("warning: the fit did not converge", file=sys.stderr)
    return 0
