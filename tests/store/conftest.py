"""Helpers for the results-store tests."""

from __future__ import annotations

import os
import uuid

import pytest
from storehelp import metric, trial

from equisweep import cli
from equisweep.store import open_store
from tests.helpers.cli import run_cli as _run_cli
from tests.reliability.s3 import moto_s3

STORE_COMMANDS = ("query", "status", "store", "best")


@pytest.fixture(scope="session")
def _s3_server():
    """One moto S3 server for the session's store tests; its AWS variables are set only for
    the tests that use it (by `store_uri`), not for every later test of the session."""
    saved = dict(os.environ)
    with moto_s3("store-tests") as (_, bucket, env):
        os.environ.clear()
        os.environ.update(saved)
        yield bucket, env


@pytest.fixture(params=["local", "s3"])
def store_uri(request, tmp_path, monkeypatch):
    """Every store test runs on a local folder and on an S3 bucket (moto's real server), as
    users keep stores both ways; a test about local files asks for `local` only
    (`@pytest.mark.parametrize("store_uri", ["local"], indirect=True)`)."""
    if request.param == "local":
        return str(tmp_path / "results")
    bucket, env = request.getfixturevalue("_s3_server")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return f"s3://{bucket}/{uuid.uuid4().hex}"


@pytest.fixture
def store(store_uri):
    return open_store(store_uri)


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
