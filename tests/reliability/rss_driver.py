"""Run `equisweep ARGS` and write the process's peak resident set size (VmHWM, bytes) to
$EQUISWEEP_RSS_FILE when it exits: the driver's own memory, not Ray's processes'.

usage: python -m tests.reliability.rss_driver ARGS...
"""

from __future__ import annotations

import atexit
import os
import sys


def _peak_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def _record() -> None:
    with open(os.environ["EQUISWEEP_RSS_FILE"], "w") as f:
        f.write(str(_peak_rss()))


if __name__ == "__main__":
    atexit.register(_record)
    from equisweep.cli import main

    sys.exit(main(sys.argv[1:]))
