"""`equisweep store check`: find damaged files in a results store."""

from __future__ import annotations

from equisweep.store.cli_common import add_store_argument, open_for_reading


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="store_command", metavar="ACTION")
    sub.required = True
    check = sub.add_parser(
        "check",
        help="read every file; list damaged ones (exit 1 if any)",
        description="Read every file of the results store in full and list the damaged ones. "
        "Exit status: 0 all good, 1 damaged files found, 2 bad input (e.g. no store).",
    )
    add_store_argument(check)


def run(args) -> int:
    store = open_for_reading(args)
    report = store.check()
    print(report)
    return 0 if report.ok else 1
