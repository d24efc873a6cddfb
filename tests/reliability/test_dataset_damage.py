"""A cached dataset damaged between sweeps: the driver re-hashes it at sweep start and remakes
what is damaged, so no trial is trained on (or fails on) a bad shard."""

from __future__ import annotations

import hashlib

import pytest

from equisweep.spec import parse_spec
from equisweep.sweep.driver import _build_dataset
from equisweep.task.generate import dataset_path
from tests.sweep.conftest import tiny_sweep_dict

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("damage", ["flipped bytes", "truncated", "deleted"])
def test_a_damaged_cached_shard_is_remade_before_any_trial(ray_session, tmp_path, damage):
    spec = parse_spec(dict(tiny_sweep_dict("damaged"), store=str(tmp_path / "store")))
    data = tmp_path / "data"
    _build_dataset(spec, str(data), progress=False)
    folder = dataset_path(spec.task, data)
    shard = sorted(folder.glob("train-*.npz"))[0]
    good = hashlib.sha256(shard.read_bytes()).hexdigest()
    raw = bytearray(shard.read_bytes())
    if damage == "flipped bytes":  # same size: only a checksum can tell
        raw[len(raw) // 2] ^= 0xFF
        shard.write_bytes(bytes(raw))
    elif damage == "truncated":
        shard.write_bytes(bytes(raw[: len(raw) // 2]))
    else:
        shard.unlink()
    _build_dataset(spec, str(data), progress=False)
    assert hashlib.sha256(shard.read_bytes()).hexdigest() == good
