"""`run` probes an object store before Ray starts (issue 20)."""

from __future__ import annotations

from tests.reliability.s3 import moto_s3


def test_run_names_a_mistyped_bucket_before_ray_starts(write_sweep, monkeypatch):
    """Issue 20: `run --store s3://mistyped` cost 32 s of Ray start-up and a traceback."""
    import sys

    from equisweep.cli import main

    with moto_s3("real-bucket"):
        monkeypatch.setitem(sys.modules, "ray", None)  # importing Ray would fail the test
        assert main(["run", str(write_sweep()), "--store", "s3://reel-bucket/x"]) == 2
