"""Fixtures: synthetic sweeps (see synth.py) in real results stores."""

from __future__ import annotations

import pytest

from equisweep.store import open_store
from tests.analysis.synth import write_sweep


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path / "results")


@pytest.fixture
def quickstart_store(store):
    """Like sweeps/quickstart.yaml: 2 sizes x 2 step counts x 2 data sizes per family."""
    return write_sweep(store, "quick", sizes={"gatr": [2000, 9000], "transformer": [3000, 20000]},
                       steps=[200, 800], trajs=[128, 512])


@pytest.fixture(scope="module")
def full_store(tmp_path_factory):
    store = open_store(tmp_path_factory.mktemp("full") / "results")
    return write_sweep(
        store, "study",
        sizes={"gatr": [1e3, 4e3, 1.6e4, 6.4e4, 2.56e5], "transformer": [2e3, 8e3, 3.2e4, 1.28e5,
                                                                        5.12e5]},
        steps=[100, 300, 1000, 3000], trajs=[64, 256, 1024, 4096, 16384], noise=0.005)
