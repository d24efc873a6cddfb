"""An `equisweep` CLI driver run as a real subprocess, to be killed or waited for."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


class Driver:
    """`python -m equisweep.cli ARGS` in its own session, output to `log`; `env` adds
    variables (fault injection), `cwd` is where it runs (relative store paths)."""

    def __init__(self, args: list[str], log: Path, env: dict | None = None,
                 cwd: Path | None = None):
        base = {k: v for k, v in os.environ.items()
                if k != "RAY_ADDRESS" and not k.startswith("EQUISWEEP_FAULT")}
        env = dict(base, **(env or {}))
        # No RAY_AUTH_MODE: `equisweep run/resume --address` must find ~/.ray/auth_token
        # and use it by itself, as a user's shell would not set the variable either.
        env.pop("RAY_AUTH_MODE", None)
        self.log = log
        self._out = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "equisweep.cli", *args],
                                     stdout=self._out, stderr=subprocess.STDOUT, env=env,
                                     cwd=cwd, start_new_session=True)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._out.close()

    def wait(self, timeout: float = 400) -> int:
        try:
            rc = self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.kill()
        self._out.close()
        return rc
