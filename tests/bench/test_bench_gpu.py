"""bench/gpu/bench_gpu.py --device cpu --quick: the GPU benchmark runs on a CPU with only what
the GPU host has (its Ray/MuJoCo/Optuna imports are blocked), prints a row per size and K,
and trains a stacked WSD share into a store (not how fast: tests assert behaviour)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_dataset_travels_small():
    files = [f for f in (ROOT / "bench/gpu/data").rglob("*") if f.is_file()]
    assert any(f.name == "manifest.json" for f in files)
    assert sum(f.stat().st_size for f in files) < 8 * 2**20


@pytest.mark.slow
def test_quick_on_cpu(tmp_path):
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench/gpu/bench_gpu.py"),
            "--device",
            "cpu",
            "--quick",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stderr[-2000:]
    rows = [
        line.split(" | ")
        for line in res.stdout.splitlines()
        if line.startswith("| ")
        and line.split(" | ")[0] in ("| gatr", "| transformer", "| transformer +aug")
    ]
    assert {(r[0], r[2]) for r in rows} == {
        (v, k) for v in ("| gatr", "| transformer", "| transformer +aug") for k in ("1", "2")
    }
    wsd = [
        line
        for line in res.stdout.splitlines()
        if line.startswith("| 20 |") or line.startswith("| 40 |")
    ]
    assert len(wsd) == 6 and all("| finished |" in line for line in wsd)
    assert (tmp_path / "store" / "metrics").is_dir()
