"""Shared fixtures: one local Ray for the whole session, an isolated data cache."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Datasets built by tests go to a session folder, never the user's cache."""
    if "EQUISWEEP_DATA" not in os.environ:
        os.environ["EQUISWEEP_DATA"] = str(tmp_path_factory.mktemp("data-cache"))
    yield


@pytest.fixture(scope="session")
def ray_session():
    """The one local Ray every Ray-using test shares (start-up costs seconds)."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    yield ray
    ray.shutdown()


def ray_head_env() -> dict:
    """Environment for a test's own `ray start --head`: token auth on, with a token on disk.

    `ray start` turns token auth on only when a token already exists (`ray.init` makes one),
    so on a fresh machine a test cluster would otherwise run without auth, depending on
    which test happened to run first.
    """
    import subprocess
    import sys
    from pathlib import Path

    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    token = Path(env.get("RAY_AUTH_TOKEN_PATH") or "~/.ray/auth_token").expanduser()
    if not env.get("RAY_AUTH_TOKEN") and not token.is_file():
        subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "get-auth-token",
                        "--generate"], env=env, capture_output=True, check=True)
    env["RAY_AUTH_MODE"] = "token"
    return env
