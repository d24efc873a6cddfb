"""`equisweep run SWEEP.yaml`: run a sweep on the embedded local Ray or a cluster."""

from __future__ import annotations

from equisweep.store.naming import add_store_argument, store_location


def add_arguments(p) -> None:
    p.add_argument("sweep", help="sweep YAML file")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (default: $RAY_ADDRESS, else an embedded local Ray)")
    add_store_argument(p)
    p.add_argument("--data-dir", default=None,
                   help="dataset cache (default: $EQUISWEEP_DATA or ~/.cache/equisweep/data)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="show Ray Tune's own trial table (-vv for more)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> int:
    from equisweep.spec import load_spec
    from equisweep.sweep.driver import run_sweep

    spec = load_spec(args.sweep)
    summary = run_sweep(spec, store_uri=store_location(args.store, spec.store),
                        address=args.address, data_dir=args.data_dir, verbose=args.verbose,
                        progress=not args.no_progress)
    print_summary(summary)
    if summary.get("to_run", 0) and summary.get("errors"):
        return 1
    return 0


def print_summary(summary: dict) -> None:
    name, store = summary["sweep"], summary["store"]
    if not summary.get("to_run"):
        print(f"sweep {name}: nothing to run ({summary['already_done']} trials already "
              f"finished in {store}, {summary['skipped_budget']} over budget)")
        return
    print(f"sweep {name}: ran {summary['to_run']} trials "
          f"({summary.get('errors', 0)} failed, {summary['already_done']} already done, "
          f"{summary['skipped_budget']} skipped by the budget); "
          f"{summary['planned_flops']:.3g} FLOPs planned")
    print(f"results: equisweep query {name} --store {store} --final")
