"""Load: 220 very short trials, 2 at a time, on the embedded Ray. The store ends exact
(every trial finished once, every (key, step) row written once) and the driver's peak
resident memory is measured (docs/RELIABILITY.md and bench/BENCHMARKS.md record it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from equisweep.spec import parse_spec
from equisweep.store import open_store
from tests.reliability.conftest import raw_rows, write_yaml
from tests.sweep.conftest import tiny_sweep_dict

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = 110  # per family: 220 trials
STEPS, EVERY = 4, 2
# A bound far above what was measured (see docs/RELIABILITY.md): it fails on a leak that
# grows with the number of trials, not on noise.
PEAK_RSS_BOUND = 2 * 2**30


def test_many_short_trials_store_is_exact_and_driver_memory_bounded(tmp_path):
    spec = tiny_sweep_dict(
        "load", store=str(tmp_path / "store"),
        grid={"steps": [STEPS], "train_trajectories": [8], "seed": [0]},
        search={"method": "random", "samples_per_cell": SAMPLES,
                "params": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}}},
        training={"batch_size": 2, "eval_every": EVERY, "checkpoint_every": STEPS},
        max_concurrent=2, retries=1)
    sweep_file = write_yaml(tmp_path / "load.yaml", spec)
    keys = {t.key for t in parse_spec(spec, source="load.yaml").trials()}
    assert len(keys) == 2 * SAMPLES
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["EQUISWEEP_RSS_FILE"] = str(tmp_path / "rss")
    t0 = time.time()
    out = subprocess.run([sys.executable, "-m", "tests.reliability.rss_driver", "run",
                          str(sweep_file), "--no-progress"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1500)
    wall = time.time() - t0
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    peak = int((tmp_path / "rss").read_text())
    print(f"load: {len(keys)} trials, 2 at a time, {wall:.0f} s, driver peak RSS "
          f"{peak / 2**20:.0f} MiB", json.dumps({"trials": len(keys), "wall_s": round(wall),
                                                   "peak_rss_mib": round(peak / 2**20)}))

    store = open_store(tmp_path / "store")
    final = store.trials(sweep="load").to_pylist()
    assert {t["key"] for t in final} == keys
    assert {t["status"] for t in final} == {"finished"}
    raw = Counter((r["key"], r["step"]) for r in raw_rows(tmp_path / "store"))
    assert set(raw) == {(k, s) for k in keys for s in range(EVERY, STEPS + 1, EVERY)}
    assert set(raw.values()) == {1}, "a row was written twice"
    raw_trials = Counter((r["key"], r["status"]) for r in raw_rows(tmp_path / "store",
                                                                   "trials"))
    assert all(raw_trials[(k, "finished")] == 1 for k in keys)
    assert store.check().ok
    assert peak < PEAK_RSS_BOUND, f"driver peak RSS {peak / 2**20:.0f} MiB"
