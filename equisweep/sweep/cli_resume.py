"""`equisweep resume NAME`: continue an interrupted sweep from Ray Tune's experiment state."""

from __future__ import annotations

import os


def add_arguments(p) -> None:
    p.add_argument("name", help="sweep name (as in its YAML `name:`)")
    p.add_argument("--store", default=None,
                   help="results store (default: $EQUISWEEP_STORE, then ./results)")
    p.add_argument("--address", default=None, help="Ray cluster to join (default: local)")
    p.add_argument("-v", "--verbose", action="count", default=0)


def run(args) -> int:
    from equisweep.sweep.driver import resume_sweep

    store = args.store or os.environ.get("EQUISWEEP_STORE") or "results"
    summary = resume_sweep(args.name, store_uri=store, address=args.address,
                           verbose=args.verbose)
    print(f"sweep {summary['sweep']}: {summary['trials']} trials in the experiment, "
          f"{summary['errors']} failed")
    return 1 if summary["errors"] else 0
