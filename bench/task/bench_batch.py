"""Time to assemble a padded batch of 64 samples: `collate([ds[i] for i in idx])`.

    python bench/task/bench_batch.py --trajectories 512 --repeats 200

Builds the default dataset in a temporary cache, then times random batches: wall clock and
this process's CPU time (single-threaded work, so on an idle core the two agree; on a shared
box the CPU time is the steadier number).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np

from equisweep.task import RigidBodyDataset, TaskConfig, collate, ensure_dataset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trajectories", type=int, default=512)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--delta", type=int, default=1)
    args = parser.parse_args()
    cfg = TaskConfig(trajectories=args.trajectories, val_trajectories=0, test_trajectories=0)
    with tempfile.TemporaryDirectory() as cache:
        path = ensure_dataset(cfg, cache_dir=cache, progress=False)
        start = time.perf_counter()
        ds = RigidBodyDataset(path, delta=args.delta)
        load = time.perf_counter() - start
        rng = np.random.default_rng(0)
        times, cpu, tokens = [], [], []
        for step in range(args.repeats):
            ds.set_epoch(step)
            idx = rng.integers(0, len(ds), size=args.batch)
            start, cpu0 = time.perf_counter(), time.process_time()
            batch = collate([ds[int(i)] for i in idx])
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - cpu0)
            tokens.append(batch["x0"].shape[1])
    ms = [t * 1e3 for t in times]
    print(f"load {len(ds)} trajectories: {load * 1e3:.0f} ms")
    print(f"batch of {args.batch} (padded to {int(np.median(tokens))} tokens median): "
          f"median {statistics.median(ms):.2f} ms, p90 {np.percentile(ms, 90):.2f} ms "
          f"over {args.repeats} batches; CPU median {statistics.median(cpu) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
