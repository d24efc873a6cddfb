"""Small datasets shared by the task tests (generation costs a fraction of a second each)."""

from __future__ import annotations

import pytest

from equisweep.task import TaskConfig

SMALL = dict(trajectories=6, val_trajectories=2, test_trajectories=2, shard_size=4,
             frames=24, bodies=(2, 5))


@pytest.fixture(scope="session")
def small_cfg() -> TaskConfig:
    return TaskConfig(**SMALL)


@pytest.fixture(scope="session")
def small_dataset(small_cfg, tmp_path_factory):
    """A finished dataset; tests must not modify it (copy it first)."""
    from equisweep.task import ensure_dataset

    return ensure_dataset(small_cfg, cache_dir=tmp_path_factory.mktemp("small"), workers=1,
                          progress=False)


@pytest.fixture
def cli(monkeypatch, capsys):
    """Run `equisweep data ...` through the real entry point; returns (rc, stdout, stderr)."""
    import equisweep.cli

    # Only `data` is under test; other commands' modules may be mid-construction.
    monkeypatch.setattr(equisweep.cli, "COMMANDS", {"data": equisweep.cli.COMMANDS["data"]})

    from tests.helpers.cli import run_cli

    return lambda *argv: run_cli(capsys, "data", *argv)
