"""`equisweep analyze NAME`: scaling-law fits, compute-optimal frontiers and the report."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "Writes fits.json (every coefficient with its standard error, 95% bootstrap interval "
        "and the data it came from) and report.html (self-contained, works offline), plus "
        "PNG copies of the figures when kaleido and Chromium are installed. Every fit has a "
        "status (ok, weak, undetermined) with its reasons; nothing is derived from an "
        "undetermined fit, and the report says 'not determined: why' instead."
    )
    parser.add_argument("name", metavar="NAME", help="sweep name in the results store")
    from equisweep.store.naming import add_store_argument

    add_store_argument(parser)
    parser.add_argument("--out", default=None, metavar="DIR",
                        help="output folder (default: <store>/reports/<NAME>/ for a local "
                             "store, ./report-<NAME>/ for a remote one)")
    parser.add_argument("--bootstrap", type=int, default=200, metavar="N",
                        help="bootstrap resamples per fit (default 200; 0: no intervals)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.add_argument("--workers", type=int, default=None,
                        help="bootstrap processes (default: all cores for large jobs)")
    parser.add_argument("--points", choices=("tuned", "all"), default="tuned",
                        help="tuned (default): one point per grid cell, the trial with the "
                             "lowest validation loss; all: pool every search sample")
    parser.add_argument("--compute", choices=("flops", "nominal", "wall"), default="flops",
                        help="compute axis of the fits: training FLOPs as counted (default), "
                             "GATr v1.4's nominal FLOPs, or measured training wall-clock "
                             "seconds")
    parser.add_argument("--no-png", action="store_true", help="skip PNG copies of figures")
    parser.add_argument("--watch", action="store_true",
                        help="rewrite the report while the sweep runs, and a final time when "
                             "its driver ends")
    parser.add_argument("--every", type=float, default=180.0, metavar="SECONDS",
                        help="seconds between rewrites with --watch (default: 180)")
    parser.add_argument("--wait", type=float, default=120.0, metavar="SECONDS",
                        help="with --watch: how long to wait for a sweep that is not in the "
                             "store yet (default: 120)")


def default_out(store_uri: str, name: str) -> str:
    from equisweep.store.layout import report_dir

    return report_dir(store_uri, name)


def check_out(out) -> None:
    """UserError (one line, naming --out) when the output folder could not be written: a
    file in its path, or its nearest existing folder not writable (a read-only mount, no
    permission). Nothing is created here; a full disk shows only when writing."""
    import errno
    import os
    from pathlib import Path

    from equisweep.errors import UserError

    path = Path(out).expanduser().absolute()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"--out {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK, effective_ids=True):
        readonly = bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
        reason = os.strerror(errno.EROFS if readonly else errno.EACCES)
        what = "cannot create folder" if probe != path else "cannot write"
        raise UserError(f"--out {out}: {what} ({reason})")


def run(args) -> int:
    from equisweep.analysis.analyze import analyze_store
    from equisweep.errors import UserError

    if args.bootstrap < 0:
        raise UserError("--bootstrap must be ≥ 0")
    from equisweep.store.naming import store_location

    store_uri = store_location(args.store)
    out = args.out or default_out(store_uri, args.name)
    if not args.every > 0:
        raise UserError(f"--every must be > 0 seconds, got {args.every:g}")
    if not args.wait >= 0:
        raise UserError(f"--wait must be ≥ 0 seconds, got {args.wait:g}")
    check_out(out)  # before minutes of fitting, not after them

    def once(progress=True):
        return analyze_store(store_uri, args.name, out, n_boot=args.bootstrap, seed=args.seed,
                             workers=args.workers, png=not args.no_png, progress=progress,
                             points=args.points, compute=args.compute)

    from equisweep.terminal import printable  # summaries quote stored names and texts

    def say(text, **kwargs):
        print(printable(text, keep="\n"), **kwargs)

    if args.watch:
        from equisweep.analysis.watch import watch

        return watch(store_uri, args.name, out, args.every, lambda: once(progress=False),
                     wait_s=args.wait, say=say)
    say(once().summary)
    return 0
