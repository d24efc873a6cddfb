"""Stacked vs one-by-one training of K learning-rate candidates (issue 18), one process each.

    OMP_NUM_THREADS=1 python bench/train/bench_stack.py stack --family transformer \
        --size '{"width": 16, "depth": 2}' -k 4 --steps 200
    ... alone ...   (the same K trials one after another, the lone trainer)

Both modes train the same K trials (lr spread over a decade, one seed, batch 8) on a small
rigid-body dataset (generated on first use) with one evaluation at the end, and print the
total training wall and ms per member-step. Time the two as whole processes side by side
(both in one invocation of a timer that alternates them) and quote the ratio of medians.
"""

from __future__ import annotations

import argparse
import json
import time

TASK = {"name": "rigid_body", "trajectories": 64, "bodies": [3, 6], "vertices": 12,
        "frames": 48, "val_trajectories": 16, "test_trajectories": 16, "delta": 4, "seed": 0}


def configs(family: str, size: dict, k: int, steps: int, batch: int) -> list[dict]:
    from equisweep.spec import parse_spec

    spec = parse_spec({
        "name": "bench-stack", "task": TASK, "families": {family: {"sizes": [size]}},
        "grid": {"steps": [steps], "train_trajectories": [64], "seed": [0]},
        "search": {"method": "grid", "params": {"lr": 1e-3}},
        "training": {"batch_size": batch, "eval_every": steps, "checkpoint_every": steps},
    })
    (cell,) = spec.cells()
    lrs = [1e-3 * 10 ** (i / max(k - 1, 1)) for i in range(k)]
    return [spec.cell_trial(cell, {"lr": lr}).to_dict() for lr in lrs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["stack", "alone"])
    ap.add_argument("--family", default="transformer")
    ap.add_argument("--size", default='{"width": 16, "depth": 2}')
    ap.add_argument("-k", type=int, default=4)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    from equisweep.train import run_trial
    from equisweep.trainer.stack import run_stack

    cfgs = configs(args.family, json.loads(args.size), args.k, args.steps, args.batch)
    t0 = time.perf_counter()
    if args.mode == "stack":
        rows = run_stack(cfgs)
        train_wall = sum(r[-1]["wall_s"] for r in rows)
    else:
        rows = [run_trial(c) for c in cfgs]
        train_wall = sum(r[-1]["wall_s"] for r in rows)
    total = time.perf_counter() - t0
    print(f"{args.mode} {args.family} {args.size} K={args.k}: train wall {train_wall:.2f} s, "
          f"{1e3 * train_wall / (args.k * args.steps):.2f} ms per member-step, "
          f"process work {total:.2f} s; final val "
          + " ".join(f"{r[-1]['val_loss']:.3g}" for r in rows))


if __name__ == "__main__":
    main()
