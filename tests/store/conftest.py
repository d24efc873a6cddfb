"""Helpers for the results-store tests."""

from __future__ import annotations

import pytest
from storehelp import metric, trial

from equisweep import cli
from equisweep.store import open_store
from tests.helpers.cli import run_cli as _run_cli

STORE_COMMANDS = ("query", "status", "store", "best")


@pytest.fixture
def store(tmp_path):
    return open_store(tmp_path / "results")


@pytest.fixture
def filled(store):
    """Two sweeps: 'alpha' (gatr a finished, b failed, transformer c running), 'beta'."""
    with store.writer("alpha") as w:
        w.add_trial(trial("a"))
        w.add_trial(trial("b"))
        w.add_trial(trial("c", family="transformer", steps=800))
        w.add_metrics([metric("a", s) for s in range(1, 5)])
        w.add_metrics([metric("b", s) for s in range(1, 3)])
        w.add_metrics([metric("c", s) for s in range(1, 4)])
        w.add_metrics([metric("a", 5, test_loss=0.05)])
        w.add_trial(trial("a", status="finished"))
        w.add_trial(trial("b", status="failed", error="boom"))
    with store.writer("beta") as w:
        w.add_trial(trial("a", status="diverged"))
        w.add_metrics([metric("a", 1, flops=7e6)])
    store.write_sweep_meta("alpha", {"name": "alpha", "budget": {"flops": 1e8}})
    return store


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run `equisweep ...` through the real entry point, with only the store's commands
    registered (the other commands belong to other parts of the package)."""
    monkeypatch.setattr(cli, "COMMANDS",
                        {k: v for k, v in cli.COMMANDS.items() if k in STORE_COMMANDS})
    monkeypatch.delenv("EQUISWEEP_STORE", raising=False)

    return lambda *argv: _run_cli(capsys, *argv)
