"""The fork record: a WSD branch resumed from its own checkpoint (a driver restarted
mid-branch) still learns its trunk's FLOPs at the fork, so the live FLOPs-spent count does not
recount the trunk's steps (issue 20)."""

from __future__ import annotations

import json

import pytest

from equisweep.sweep.forks import CHECKPOINT, META, ForkStore
from equisweep.sweep.trainable import _recorded_fork_flops


@pytest.fixture
def forks(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / CHECKPOINT).write_bytes(b"state")
    return ForkStore(str(tmp_path / "store"), "s"), str(ckpt)


def test_a_fork_records_its_trunks_flops_and_a_resumed_branch_reads_them(forks):
    store, ckpt = forks
    store.put("b", ckpt, trunk="t", step=25, flops=1.25e9)
    assert store.info("b") == {"trunk": "t", "step": 25, "flops": 1.25e9}
    assert _recorded_fork_flops(store, "b", 25) == 1.25e9
    assert _recorded_fork_flops(store, "b", 30) is None  # a fork at another step is not it
    assert _recorded_fork_flops(store, "missing", 25) is None


def test_an_older_fork_record_without_flops_is_read_as_unknown(forks):
    store, ckpt = forks
    store.put("b", ckpt, trunk="t", step=25)
    assert "flops" not in store.info("b")
    assert _recorded_fork_flops(store, "b", 25) is None
    # a non-finite record (hand-edited) is unknown too
    store._put(f"{store.root}/b/{META}", json.dumps({"trunk": "t", "step": 25,
                                                     "flops": float("nan")}).encode())
    assert _recorded_fork_flops(store, "b", 25) is None
