"""Shared checks of the fault tests: a trial's stored curve against an uninterrupted run."""

from __future__ import annotations

import contextlib
import math
import os

import torch

from equisweep.train import run_trial

COMPARED = ("train_loss", "val_loss", "flops", "samples", "lr", "test_loss")


def reference_rows(trial_config: dict) -> dict[int, dict]:
    """step -> row of the same trial run start to finish in this process, single-threaded
    like a 1-CPU Ray trial (so float reductions happen in the same order)."""
    threads = torch.get_num_threads()
    old = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        rows = run_trial(trial_config)
    finally:
        if old is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = old
        torch.set_num_threads(threads)
    return {r["step"]: r for r in rows}


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
