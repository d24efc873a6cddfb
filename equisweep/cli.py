"""The `equisweep` command: parses arguments and hands each subcommand to its module.

Each subcommand module exposes `add_arguments(parser)` and `run(args) -> int`; modules are
imported lazily so `equisweep validate` never pays for (or starts) Ray.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys

from equisweep.errors import UserError

# name -> (module, one-line help). Order is the order of `equisweep --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("equisweep.sweep.cli_validate", "check a sweep file: trials and FLOP total"),
    "data": ("equisweep.sweep.cli_data", "generate or describe a cached rigid-body dataset"),
    "run": ("equisweep.sweep.cli_run", "run a sweep on the embedded local Ray or a cluster"),
    "submit": ("equisweep.sweep.cli_submit", "submit a sweep to a Ray cluster as a Ray job"),
    "resume": ("equisweep.sweep.cli_resume", "continue an interrupted sweep"),
    "status": ("equisweep.store.cli_status",
               "how a sweep is going: trials by state, FLOPs, ETA, best so far"),
    "query": ("equisweep.store.cli_query", "read trials or metrics from the results store"),
    "best": ("equisweep.store.cli_best", "the best trial per cell or variant (tuned points)"),
    "store": ("equisweep.store.cli_store", "results-store maintenance (integrity check)"),
    "analyze": ("equisweep.analysis.cli_analyze", "fit scaling laws and write the report"),
    "fit": ("equisweep.analysis.cli_fit", "fit a scaling law to any CSV table"),
}


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad arguments already; keep its message to one line."""

    def error(self, message: str):  # noqa: D401
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser() -> argparse.ArgumentParser:
    from equisweep import __version__

    parser = _Parser(
        prog="equisweep",
        description="Scaling-law sweeps of equivariant vs non-equivariant models on Ray.",
    )
    parser.add_argument("--version", action="version", version=f"equisweep {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _show_one_line(command: str):
    """equisweep's own warnings (a skipped store file, ...) as one stderr line each."""
    import warnings

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if category.__module__.startswith("equisweep."):
            text = " ".join(str(message).split())
            print(f"equisweep {command}: warning: {text}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def main(argv: list[str] | None = None) -> int:
    import warnings

    parser = build_parser()
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.showwarning = _show_one_line(args.command)
        return _run(args)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, turned into the unwinding Ctrl-C gets: `finally` blocks and context
    managers run (pools shut down, temporary files removed), where the default action
    would end the process on the spot."""


def _terminate(signum, frame):
    raise _Terminated


def _run(args) -> int:
    import threading

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main else None
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        from equisweep.terminal import printable  # a message may quote stored text

        print(printable(f"equisweep {args.command}: error: {exc}"), file=sys.stderr)
        return exc.exit_code
    except _Terminated:
        print(f"equisweep {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"equisweep {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:
        # The reader went away (`equisweep query ... | head`): stop quietly, as `cat` does.
        # Python would report the failed flush of stdout at exit; point stdout at devnull.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except OSError as exc:
        # An I/O fault no command turned into its own message: the store's S3 server down
        # ("... in bucket 'B': AWS Error NETWORK_CONNECTION ... Failed to connect to
        # HOST:PORT"), a disk error. A fault of the environment, not a bug: one line, exit 2.
        from equisweep.terminal import printable

        reason = " ".join(str(exc).split())[:600] or type(exc).__name__
        print(printable(f"equisweep {args.command}: error: {reason}"), file=sys.stderr)
        return 2
    finally:
        if main:  # in-process callers (tests, notebooks) get their own handler back
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
