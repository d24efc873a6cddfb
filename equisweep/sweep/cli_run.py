"""`equisweep run SWEEP.yaml`: run a sweep on the embedded local Ray or a cluster."""

from __future__ import annotations

from equisweep.store.layout import is_uri
from equisweep.store.naming import add_store_argument, store_location
from equisweep.store.reach import add_shared_store_argument, probe_writable, require_store_for


def add_arguments(p) -> None:
    p.add_argument("sweep", help="sweep YAML file")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (default: $RAY_ADDRESS, else an embedded local Ray)")
    add_store_argument(p)
    add_shared_store_argument(p)
    p.add_argument("--data-dir", default=None,
                   help="dataset cache (default: $EQUISWEEP_DATA or ~/.cache/equisweep/data)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="show Ray's and Tune's own output on the console instead of the log "
                        "file, with Tune's trial table (-vv for more)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars: one line per trial event and a progress line a "
                        "minute instead (what a console that is not a terminal always gets)")
    p.add_argument("--report", action="store_true",
                   help="rewrite the HTML report from the store while the sweep runs, and "
                        "once more when it ends")
    p.add_argument("--report-every", type=float, default=180.0, metavar="SECONDS",
                   help="seconds between live report rewrites (default: 180)")


def run(args) -> int:
    from equisweep.errors import UserError
    from equisweep.spec import load_spec
    from equisweep.sweep.driver import run_sweep

    if not args.report_every > 0:
        raise UserError(f"--report-every must be > 0 seconds, got {args.report_every:g}")
    spec = load_spec(args.sweep)
    store = require_store_for(args.address, store_location(args.store, spec.store),
                              shared=args.shared_store)
    if is_uri(store):  # a mistyped bucket: one line now, not a traceback after Ray starts
        probe_writable(store)
    summary = run_sweep(spec, store_uri=store,
                        address=args.address, data_dir=args.data_dir, verbose=args.verbose,
                        progress=not args.no_progress, report=args.report,
                        report_every_s=args.report_every)
    print_summary(summary)
    return exit_code(summary)


def exit_code(summary: dict) -> int:
    """1 when a trial failed or a trial the run should have ended is not ended in the store
    (named on stderr, with how to continue); 0 otherwise."""
    import sys

    left = summary.get("unfinished") or []
    if left:
        shown = ", ".join(left[:10]) + (f" and {len(left) - 10} more" if len(left) > 10 else "")
        print(f"sweep {summary['sweep']}: {len(left)} planned trials did not end in the store "
              f"({shown}); continue with: equisweep resume {summary['sweep']} "
              f"--store {summary['store']}", file=sys.stderr)
        return 1
    return 1 if summary.get("to_run", 0) and summary.get("errors") else 0


def print_summary(summary: dict) -> None:
    name, store = summary["sweep"], summary["store"]
    opt = f" --store {store}"
    if not summary.get("to_run"):
        print(f"sweep {name}: nothing to run ({summary['already_done']} trials already "
              f"finished in {store}, {summary['skipped_budget']} over budget)")
    else:
        print(f"sweep {name}: ran {summary['to_run']} trials "
              f"({summary.get('errors', 0)} failed, {summary.get('retried', 0)} crashed "
              f"attempts retried, {summary['already_done']} already done, "
              f"{summary['skipped_budget']} skipped by the budget); "
              f"{summary['planned_flops']:.3g} FLOPs planned")
        print_outcome(name, store, summary.get("baselines") or [])
    if summary.get("report"):
        print(f"report: {summary['report']}")
    print("next:")
    print(f"  equisweep status {name}{opt}")
    print(f"  equisweep best {name}{opt}")
    print(f"  equisweep query {name}{opt} --final")
    print(f"  equisweep analyze {name}{opt}")


def print_outcome(name: str, store_uri: str, baselines: list[dict]) -> None:
    """The zero-parameter baselines' test losses, then the best trial of each variant (by
    validation loss, `equisweep best --per variant`) with its test loss ± SE and skill."""
    import pyarrow as pa

    from equisweep.store import open_store
    from equisweep.store.best import best_trials
    from equisweep.store.cli_common import format_table

    for row in baselines:
        if row["split"] == "test":
            print(f"baseline {row['baseline']}: test loss {row['loss']:.4g} ± "
                  f"{row['loss_se']:.2g} ({row['windows']} windows)")
    best = best_trials(open_store(store_uri).final(name), per="variant").to_pylist()
    if not best:
        return

    def num(v, fmt):
        return "" if v is None else format(v, fmt)

    print("best per variant (by val_loss; skill = 1 − test loss / constant-velocity's):")
    print(format_table(pa.table({
        "VARIANT": [f"{r['family']}{'+aug' if r['augment'] else ''}" for r in best],
        "KEY": [r["key"] for r in best],
        "TEST_LOSS": [f"{num(r['test_loss'], '.4g')} ± {num(r['test_loss_se'], '.2g')}"
                      for r in best],
        "SKILL": [num(r["skill"], "+.3f") for r in best],
    }), right={"TEST_LOSS", "SKILL"}))
