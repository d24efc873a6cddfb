"""Shared fixtures: one local Ray for the whole session, an isolated data cache."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys

import pytest

# The fault injector (tests/helpers/inject/fault_injector.py): on PYTHONPATH before any Ray or
# driver starts, so every process the tests start imports its sitecustomize and can import
# it; installed here for drivers in this process, where a test sets EQUISWEEP_FAULT late.
INJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers", "inject")
if INJECT not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (INJECT, os.environ.get("PYTHONPATH")) if p)
if INJECT not in sys.path:
    sys.path.insert(0, INJECT)
import fault_injector  # noqa: E402 - needs the path set just above

fault_injector.install()


def pytest_configure(config):
    """Ray's token exists before any test worker starts a Ray: with `-n 2` (the README's test
    command) two workers' first `ray.init` would each write ~/.ray/auth_token on a fresh
    machine, and a cluster started with one token would refuse clients that read the other.
    Runs once, in the controlling process (xdist workers carry `workerinput`)."""
    from pathlib import Path

    if hasattr(config, "workerinput") or os.environ.get("RAY_AUTH_TOKEN"):
        return
    token = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token").expanduser()
    if not token.is_file():
        subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "get-auth-token",
                        "--generate"], capture_output=True, check=True)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Datasets built by tests go to a session folder, never the user's cache."""
    if "EQUISWEEP_DATA" not in os.environ:
        os.environ["EQUISWEEP_DATA"] = str(tmp_path_factory.mktemp("data-cache"))
    yield


def _ray_variables() -> dict:
    return {k: v for k, v in os.environ.items() if k.startswith("RAY_") or k == "PYTHONBREAKPOINT"}


@pytest.fixture(autouse=True)
def _ray_environment_restored():
    """Each test leaves Ray's variables in os.environ as it found them. Ray and equisweep set
    them in the process that starts or joins Ray (RAY_AUTH_MODE=token, ...); every CLI
    driver a later test spawns would inherit them and behave as no user's fresh shell does
    (no token notice in its log), so tests would pass or fail by their order. Only Ray's:
    a wider-scoped fixture a test requests lazily (moto's AWS variables) sets others that
    must outlive the test."""
    saved = _ray_variables()
    yield
    for k in set(_ray_variables()) - set(saved):
        os.environ.pop(k, None)
    os.environ.update(saved)


@pytest.fixture(scope="session")
def ray_session():
    """The one local Ray every Ray-using test shares (start-up costs seconds)."""
    import ray

    if not ray.is_initialized():
        saved = dict(os.environ)
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
        # ray.init leaves RAY_AUTH_MODE=token (and RAY_CLIENT_MODE, PYTHONBREAKPOINT, ...)
        # in os.environ; this Ray has read them, the drivers later tests spawn must not.
        os.environ.clear()
        os.environ.update(saved)
    yield ray
    ray.shutdown()


def ray_head_env() -> dict:
    """Environment for a test's own `ray start --head`: token auth on, with a token on disk.

    `ray start` turns token auth on only when a token already exists (`ray.init` makes one),
    so on a fresh machine a test cluster would otherwise run without auth, depending on
    which test happened to run first.
    """
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    token = Path(env.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token").expanduser()
    if not env.get("RAY_AUTH_TOKEN") and not token.is_file():
        subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "get-auth-token",
                        "--generate"], env=env, capture_output=True, check=True)
    env["RAY_AUTH_MODE"] = "token"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def ray_head(*args: str, log=None, client_port: int | None = None):
    """A test's own Ray cluster: `ray start --head --block` in its own process group.

    On exit only the `ray start` process gets SIGTERM: it drains the node through the GCS
    and stops its children; signalling the whole group kills the GCS first and the drain
    hangs (a minute) before anything is stopped.
    """
    out = open(log, "wb") if log else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
         "--num-cpus=2", "--disable-usage-stats",
         f"--ray-client-server-port={client_port or free_port()}",
         # Fixed default ports collide with any other Ray on the machine (the session's own
         # local Ray, a user's): the job agent's 52365 most visibly ("no available agent").
         f"--dashboard-agent-listen-port={free_port()}", *args],
        env=ray_head_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield proc
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        if log:
            out.close()
