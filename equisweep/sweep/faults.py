"""Fault injection for the reliability tests: crash a trial for real, once per trial key.

Off unless EQUISWEEP_FAULT is set in the driver's environment, e.g. `exit@120` (os._exit at
step 120), `raise@120`, `kill@120` (SIGKILL to its own process), `nan@120` (a non-finite
loss), `oom@120`, or `gate@20`: report the step-20 row (and its checkpoint), then block
until the file EQUISWEEP_FAULT_GATE exists, so a test can act (remove a node, kill the
driver) while it knows every gated trial is still running, without racing the training.
EQUISWEEP_FAULT_DIR holds one marker per key, so each fault fires on the first attempt only
and the retry can show that nothing was lost. EQUISWEEP_FAULT_KEYS (comma-separated key
prefixes) limits it to some trials. The driver copies these variables into each trial's
payload (not its config or key), so they reach workers that were started before they were set.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

ENV = ("EQUISWEEP_FAULT", "EQUISWEEP_FAULT_DIR", "EQUISWEEP_FAULT_KEYS", "EQUISWEEP_FAULT_GATE")
# A gate nobody opens is a broken test: fail the trial loudly rather than hang the suite.
GATE_TIMEOUT_S = 600.0


def from_environment() -> dict | None:
    """The driver side: the fault settings to ship with each trial, if any."""
    if not os.environ.get("EQUISWEEP_FAULT"):
        return None
    return {name: os.environ.get(name, "") for name in ENV}


def planned_fault(key: str, settings: dict | None) -> tuple[str, int, str] | None:
    """The worker side: (kind, step, marker dir) if this trial should fail now."""
    if not settings or not settings.get("EQUISWEEP_FAULT"):
        return None
    keys = [k for k in settings.get("EQUISWEEP_FAULT_KEYS", "").split(",") if k]
    if keys and not any(key.startswith(k) for k in keys):
        return None
    marker_dir = settings.get("EQUISWEEP_FAULT_DIR", "")
    if marker_dir and (Path(marker_dir) / key).exists():
        return None
    kind, _, step = settings["EQUISWEEP_FAULT"].partition("@")
    return kind, int(step), marker_dir


def fire(kind: str, key: str, marker_dir: str) -> None:
    """Inject the fault `kind`; leave a marker first, since some kinds never return."""
    if marker_dir:
        Path(marker_dir).mkdir(parents=True, exist_ok=True)
        (Path(marker_dir) / key).touch()
    if kind == "mark":
        return
    if kind == "exit":
        os._exit(17)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "raise":
        raise RuntimeError(f"injected fault in trial {key}")
    if kind == "oom":
        # A real allocator failure, not a synthetic MemoryError: the trainable must
        # recognise what torch actually raises when memory runs out.
        import torch

        torch.empty(1 << 62, dtype=torch.uint8)


def wait_at_gate(key: str, settings: dict | None) -> None:
    """Block until the gate file exists (see `gate@STEP` above)."""
    gate = (settings or {}).get("EQUISWEEP_FAULT_GATE", "")
    if not gate:
        raise RuntimeError("gate fault without EQUISWEEP_FAULT_GATE")
    deadline = time.monotonic() + GATE_TIMEOUT_S
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"trial {key}: gate {gate} not opened in {GATE_TIMEOUT_S:.0f} s")
        time.sleep(0.1)
