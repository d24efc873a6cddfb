"""Shared checks of the fault tests: a trial's stored curve against an uninterrupted run."""

from __future__ import annotations

import contextlib
import math
import os

import torch

from equisweep.train import run_trial

COMPARED = ("train_loss", "val_loss", "flops", "samples", "lr", "test_loss")


@contextlib.contextmanager
def one_thread():
    """Single-threaded like a 1-CPU Ray trial (so float reductions happen in the same
    order as in the sweep's workers)."""
    threads, old = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old
        torch.set_num_threads(threads)


def reference_rows(trial_config: dict) -> dict[int, dict]:
    """step -> row of the same trial run start to finish in this process, one thread."""
    with one_thread():
        rows = run_trial(trial_config)
    return {r["step"]: r for r in rows}


def run_with_fault(tmp_path, monkeypatch, name: str, fault: str, spec_dict: dict,
                   keys: list[str] | None = None):
    """Run `spec_dict` on the session's Ray with the planned `fault` (EQUISWEEP_FAULT) in the
    trials of `keys` (all when None); (spec, summary, store, store path, marker folder)."""
    from equisweep.spec import parse_spec
    from equisweep.store import open_store
    from equisweep.sweep.driver import run_sweep

    markers = tmp_path / "fault-markers"
    monkeypatch.setenv("EQUISWEEP_FAULT", fault)
    monkeypatch.setenv("EQUISWEEP_FAULT_DIR", str(markers))
    if keys:
        monkeypatch.setenv("EQUISWEEP_FAULT_KEYS", ",".join(keys))
    store_path = tmp_path / "store"
    spec = parse_spec(dict(spec_dict, store=str(store_path)), source=f"{name}.yaml")
    summary = run_sweep(spec, store_uri=str(store_path), progress=False)
    return spec, summary, open_store(store_path), store_path, markers


def same(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return a == b


def assert_curve_matches(stored: list[dict], reference: dict[int, dict], key: str) -> None:
    """Every reference step once, in order, with bit-identical losses."""
    steps = [r["step"] for r in stored]
    assert steps == sorted(reference), f"{key}: stored steps {steps}"
    for r in stored:
        ref = reference[r["step"]]
        for col in COMPARED:
            assert same(r[col], ref[col]), (key, r["step"], col, r[col], ref[col])


@contextlib.contextmanager
def as_nobody():
    """Drop the effective uid for the block (the suite may run as root, which reads
    anything); the real uid stays, so it can be restored."""
    if os.geteuid() != 0:
        yield
        return
    os.setegid(65534)
    os.seteuid(65534)
    try:
        yield
    finally:
        os.seteuid(0)
        os.setegid(0)
