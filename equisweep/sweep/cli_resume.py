"""`equisweep resume NAME`: continue an interrupted sweep, planned again from the store's
recorded spec and its finished trials (Tune's pickled state is never read)."""

from __future__ import annotations

from equisweep.store.naming import add_store_argument, store_location
from equisweep.store.reach import add_shared_store_argument, require_store_for


def add_arguments(p) -> None:
    p.add_argument("name", help="sweep name (as in its YAML `name:`)")
    add_store_argument(p)
    add_shared_store_argument(p)
    p.add_argument("--address", default=None, help="Ray cluster to join (default: local)")
    p.add_argument("-v", "--verbose", action="count", default=0,
                   help="show Ray's and Tune's own output on the console instead of the log "
                        "file (-vv for more)")


def run(args) -> int:
    from equisweep.sweep.cli_run import exit_code, print_summary
    from equisweep.sweep.driver import resume_sweep

    store = require_store_for(args.address, store_location(args.store),
                              shared=args.shared_store)
    summary = resume_sweep(args.name, store_uri=store, address=args.address,
                           verbose=args.verbose)
    print_summary(summary)
    return exit_code(summary)
