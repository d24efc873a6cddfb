"""The embedded Ray must not outlive its driver.

`ray.init()` on a machine starts a GCS, a raylet, a dashboard, agents and workers as the
driver's children. When the driver dies without shutting Ray down (SIGKILL, the OOM
killer), some of them (the dashboard and the runtime-env agent, in Ray 2.60) stay alive,
re-parented to pid 1, holding ports and memory. So `connect()` starts this watchdog
first: a small process in its own session (a Ctrl-C or a kill of the driver's process
group does not reach it) whose stdin is a pipe only the driver holds (the write end is
close-on-exec, so Ray's processes do not inherit it). Ray starts with an owner token in
its environment; when the pipe closes (the driver exited, however it died) the watchdog
ends every process carrying that token: SIGTERM, then SIGKILL after a grace period.
After a clean `ray.shutdown()` there is nothing left to end.

usage: python -m equisweep.sweep.watchdog   (reads owner tokens on stdin until EOF)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

GRACE_S = 5.0  # SIGTERM first: Ray's processes clean their session files on it
SETTLE_S = 10.0  # no process of the cluster seen for this long: it is all gone
LIMIT_S = 120.0  # past this, whatever is found is SIGKILLed and the watchdog ends


MARKER = "EQUISWEEP_RAY_OWNER"  # set in the environment Ray's processes inherit


def cluster_processes(owner: str) -> list[int]:
    """Live processes of this user started by the Ray whose owner token is `owner`.

    Ray renames most of its processes (`ray::DashboardAgent`, `ray::IDLE`), so command
    lines do not identify them; the environment they inherited from the driver's
    `ray.init()` does (raylet passes it on to the workers and agents it starts).
    """
    needle = f"{MARKER}={owner}".encode()
    me, uid, out = os.getpid(), os.getuid(), []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            if os.stat(f"/proc/{pid}").st_uid != uid:
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in env and state != b"Z":
            out.append(int(pid))
    return out


def end_cluster(owner: str, grace_s: float = GRACE_S, settle_s: float = SETTLE_S,
                limit_s: float = LIMIT_S) -> list[int]:
    """SIGTERM every process of the cluster, SIGKILL each one still there `grace_s` after
    its SIGTERM, and keep looking until none has been seen for `settle_s`: a process that
    was starting as the driver died (an agent its raylet was launching, slow under load)
    appears after the first pass and would otherwise be left behind, re-parented to pid 1.
    Returns every pid it signalled."""
    termed: dict[int, float] = {}
    start = quiet_since = time.monotonic()
    while True:
        now = time.monotonic()
        pids = cluster_processes(owner)
        for pid in pids:
            if pid not in termed:
                termed[pid] = now
                _signal(pid, signal.SIGTERM)
            elif now - termed[pid] >= grace_s or now - start >= limit_s:
                _signal(pid, signal.SIGKILL)
        if pids:
            quiet_since = now
        elif now - quiet_since >= settle_s or now - start >= limit_s:
            return list(termed)
        time.sleep(0.2)


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def start() -> tuple[subprocess.Popen, str]:
    """Start the watchdog for this (driver) process, before `ray.init()`. Returns the
    handle (keep it for the driver's lifetime) and the owner token to put into the
    environment Ray starts with (`MARKER`)."""
    owner = f"{os.getpid()}-{uuid.uuid4().hex}"
    env = {k: v for k, v in os.environ.items() if k != MARKER}
    handle = subprocess.Popen([sys.executable, "-m", "equisweep.sweep.watchdog"],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    handle.stdin.write(f"{owner}\n".encode())
    handle.stdin.flush()
    return handle, owner


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the driver's Ctrl-C is not ours
    owners = []
    for line in sys.stdin.buffer:  # until EOF: the driver is gone
        text = line.strip().decode(errors="replace")
        if text:
            owners.append(text)
    for owner in owners:
        end_cluster(owner)
    return 0


if __name__ == "__main__":
    sys.exit(main())
