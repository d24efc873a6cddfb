"""Fault injection for the reliability tests: crash a trial for real, once per trial key.

Off unless EQUISWEEP_FAULT is set, e.g. `exit@120` (os._exit at step 120), `raise@120`,
`kill@120` (SIGKILL to its own process), `nan@120` (a non-finite loss) or `oom@120`.
EQUISWEEP_FAULT_DIR holds one marker per key, so each fault fires on the first attempt only
and the retry can show that nothing was lost. EQUISWEEP_FAULT_KEYS (comma-separated key
prefixes) limits it to some trials.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def planned_fault(key: str) -> tuple[str, int] | None:
    spec = os.environ.get("EQUISWEEP_FAULT")
    if not spec:
        return None
    keys = [k for k in os.environ.get("EQUISWEEP_FAULT_KEYS", "").split(",") if k]
    if keys and not any(key.startswith(k) for k in keys):
        return None
    marker_dir = os.environ.get("EQUISWEEP_FAULT_DIR")
    if marker_dir and (Path(marker_dir) / key).exists():
        return None
    kind, _, step = spec.partition("@")
    return kind, int(step)


def fire(kind: str, key: str) -> None:
    """Inject the fault `kind`; leave a marker first, since some kinds never return."""
    marker_dir = os.environ.get("EQUISWEEP_FAULT_DIR")
    if marker_dir:
        Path(marker_dir).mkdir(parents=True, exist_ok=True)
        (Path(marker_dir) / key).touch()
    if kind == "exit":
        os._exit(17)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "raise":
        raise RuntimeError(f"injected fault in trial {key}")
    if kind == "oom":
        raise MemoryError(f"injected out-of-memory in trial {key}")
