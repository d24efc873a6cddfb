"""Generation rate of `ensure_dataset` (MuJoCo scenes -> shards) with local worker processes.

    python bench/task/bench_generate.py --trajectories 1024 --workers 2 --repeats 3
    python bench/task/bench_generate.py --trajectories 10000 --workers 2 --repeats 1

Each run generates into a fresh temporary cache (nothing reused) with the default task
(3-10 bodies, 96 frames, 12-vertex hulls; val/test pools off so N counts exactly).
Besides wall-clock rate it reports CPU seconds per trajectory (this process plus its
workers, from getrusage), because a shared CI box's wall clock depends on its neighbours:
2 / (CPU s per trajectory) is the rate two otherwise idle cores reach.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time

from equisweep.task import TaskConfig, ensure_dataset


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trajectories", type=int, default=1024)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shard-size", type=int, default=64)
    args = parser.parse_args()
    cfg = TaskConfig(trajectories=args.trajectories, val_trajectories=0, test_trajectories=0,
                     shard_size=args.shard_size)
    rates, cpus = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as cache:
            cpu0 = _cpu()
            start = time.perf_counter()
            ensure_dataset(cfg, cache_dir=cache, workers=args.workers, progress=False)
            elapsed = time.perf_counter() - start
            cpus.append((_cpu() - cpu0) / args.trajectories)
        rates.append(args.trajectories / elapsed)
        print(f"run: {args.trajectories} trajectories in {elapsed:.1f} s "
              f"= {rates[-1]:.1f} traj/s wall, {cpus[-1] * 1e3:.1f} CPU ms/traj", flush=True)
    median = statistics.median(rates)
    cpu = statistics.median(cpus)
    print(f"median {median:.1f} traj/s wall over {len(rates)} runs ({args.workers} workers); "
          f"10,000 trajectories ~ {10_000 / median / 60:.1f} min")
    print(f"median {cpu * 1e3:.1f} CPU ms/traj -> {args.workers / cpu:.1f} traj/s on "
          f"{args.workers} idle cores; 10,000 ~ {10_000 * cpu / args.workers / 60:.1f} min")


def _cpu() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


if __name__ == "__main__":
    main()
