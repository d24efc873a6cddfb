"""bench/train/bench_study.py --quick: both trainers run the study-shaped sweep end to end
under `equisweep run` in one invocation, and the figures come out (not how fast: tests
assert behaviour, not speed)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location(
        "bench_study", ROOT / "bench/train/bench_study.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_sweeps_have_the_study_shape():
    """The second design's compute axis, frozen in the script (so that the measurement against
    the baseline stays comparable while the study's own files change), on the study's task."""
    bench = _module()
    study = bench.yaml.safe_load(bench.STUDY.read_text())
    docs = bench.sweeps(quick=False, steps=None)
    assert set(docs) == {"gatr", "transformer"}
    sizes = 0
    for family, doc in docs.items():
        entry = doc["families"][family]
        assert list(doc["families"]) == [family] and entry["sizes"] == bench.STUDY_SIZES[family]
        assert doc["task"] == study["task"] and doc["grid"]["steps"] == [2000]
        assert doc["grid"]["seed"] == [0]
        assert doc["search"] == {"method": "grid", "params": {"lr": {"choice": bench.STUDY_RATES}}}
        assert doc["training"]["batch_size"] == 8
        sizes += len(entry["sizes"]) * len(entry.get("augment", [False]))
    assert sizes == 15
    assert len(bench.STUDY_RATES) == 3


@pytest.mark.slow
def test_quick_runs_both_sides_and_reports(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/train/bench_study.py"),
            "--quick",
            "--runs",
            "1",
            "--families",
            "transformer",
            "--data-dir",
            str(tmp_path / "data"),
            "--json",
            str(tmp_path / "out.json"),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout
    assert "run 1 new" in out and "run 1 baseline" in out
    assert "median wall, baseline / new: total" in out
    table = [line for line in out.splitlines() if line.startswith("| transformer")]
    assert [line.split(" | ")[0] for line in table] == ["| transformer"]
    import json

    figures = json.loads((tmp_path / "out.json").read_text())
    assert all(
        r["flops_per_s"] > 0 and r["ms_per_step"] > 0
        for side in figures["sizes"].values()
        for r in side
    )
    # The baseline worktree is removed again.
    listed = subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True
    ).stdout
    assert "bench-study-" not in listed
