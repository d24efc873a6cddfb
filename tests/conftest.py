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
