"""The store probe before anything starts: a mistyped bucket is one line naming it, exit 2."""

from __future__ import annotations

import time

import pytest

from equisweep.errors import UserError
from equisweep.store.reach import probe_writable
from tests.reliability.s3 import moto_s3


def test_probe_names_a_mistyped_bucket_and_accepts_the_real_one():
    with moto_s3("real-bucket"):
        probe_writable("s3://real-bucket/prefix")
        start = time.monotonic()
        with pytest.raises(UserError) as err:
            probe_writable("s3://reel-bucket/prefix")
        assert time.monotonic() - start < 5
    message = str(err.value)
    assert "reel-bucket" in message and "\n" not in message


def test_probe_refuses_a_local_folder_it_cannot_write(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    probe_writable(str(tmp_path / "ok"))
    assert [p.name for p in (tmp_path / "ok").iterdir()] == []  # the probe cleaned up
    with pytest.raises(UserError, match="cannot write"):
        probe_writable(str(blocker / "store"))

