"""The one way tests run the `equisweep` command: the real entry point, in-process."""

from __future__ import annotations

from equisweep import cli


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    """`equisweep ARGV...` through `equisweep.cli.main`; (exit code, stdout, stderr).

    argparse's own errors (exit 2 via SystemExit) come back as an exit code like any other.
    """
    capsys.readouterr()  # drop what earlier steps printed
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err
