"""final() over a synthetic store of TRIALS x STEPS metric rows (default 10,000 x 1,000).

Written through the real writer, one fragment per ~100 trials with their rows interleaved
step by step (as a driver running those trials concurrently would report them).

    python bench/store/bench_final.py /tmp/store_bench            # write (once) + time
    python bench/store/bench_final.py /tmp/store_bench --runs 7   # time an existing store
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm import tqdm

from equisweep.store import open_store


def block(first_trial: int, trials: int, steps: int, rng) -> pa.Table:
    keys = np.array([f"{i:016x}" for i in range(first_trial, first_trial + trials)])
    step = np.repeat(np.arange(1, steps + 1, dtype=np.int64), trials)  # step-major
    key = np.tile(keys, steps)
    n = step.size
    last = step == steps
    val = np.where(step % 50 == 0, rng.random(n), np.nan)
    return pa.table({
        "key": key, "attempt": np.ones(n, np.int64), "step": step, "samples": step * 16,
        "epochs": step / 64.0, "flops": step * 1.3e9, "wall_s": step * 0.05,
        "train_loss": 1.0 / step + rng.random(n) * 1e-2,
        "val_loss": pa.array(val, from_pandas=True),
        "lr": np.full(n, 1e-3), "grad_norm": rng.random(n),
        "test_loss": pa.array(np.where(last, rng.random(n), np.nan), from_pandas=True),
        "samples_per_s": rng.random(n) * 1e3, "flops_per_s": rng.random(n) * 1e11,
    })


def write(root: Path, trials: int, steps: int, per_fragment: int) -> None:
    store = open_store(root)
    rng = np.random.default_rng(0)
    with store.writer("big", max_rows=10**9, max_delay_s=10**9) as w:
        for first in tqdm(range(0, trials, per_fragment), desc="write fragments"):
            n = min(per_fragment, trials - first)
            w.add_trials([{"key": f"{i:016x}", "family": "gatr", "status": "running",
                           "attempt": 1, "steps": steps} for i in range(first, first + n)])
            w.add_metrics(block(first, n, steps, rng))
            w.add_trials([{"key": f"{i:016x}", "family": "gatr", "status": "finished",
                           "attempt": 1, "steps": steps} for i in range(first, first + n)])
            w.flush()


def timed(fn, runs: int):
    out, times = None, []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--steps", type=int, default=1_000)
    ap.add_argument("--per-fragment", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--metrics", action="store_true", help="also time metrics() (full read)")
    args = ap.parse_args()
    if not (args.root / "metrics").exists():
        t = time.perf_counter()
        write(args.root, args.trials, args.steps, args.per_fragment)
        print(f"wrote {args.trials * args.steps:,} metric rows in {time.perf_counter() - t:.1f}s")
    files = list((args.root / "metrics").rglob("part-*.parquet"))
    size = sum(f.stat().st_size for f in files) / 2**20
    print(f"store: {len(files)} metric fragments, {size:.0f} MiB")
    store = open_store(args.root)
    final, times = timed(store.final, args.runs)
    assert final.num_rows == args.trials, final.num_rows
    assert set(final.column("step").to_pylist()) == {args.steps}
    assert final.column("test_loss").null_count == 0
    print(f"final(): {final.num_rows:,} rows; median {statistics.median(times):.3f}s "
          f"(runs: {', '.join(f'{x:.3f}' for x in times)})")
    _, times = timed(store.trials, args.runs)
    print(f"trials(): median {statistics.median(times):.3f}s")
    if args.metrics:
        m, times = timed(store.metrics, max(1, args.runs // 2))
        print(f"metrics(): {m.num_rows:,} rows; median {statistics.median(times):.3f}s")


if __name__ == "__main__":
    main()
