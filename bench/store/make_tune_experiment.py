"""Build a Ray Tune experiment directory with N trials x S reported results.

A real `Tuner` run with N trivial trials creates the genuine experiment state and
per-trial folders (params.json, result.json, progress.csv); each trial's result.json and
progress.csv are then extended to S results in Tune's own row format (Tune's reporting
overhead for N*S real reports would dominate the benchmark setup, not what it measures).

    python bench/store/make_tune_experiment.py /tmp/tune_bench --trials 1000 --steps 1000
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

from tqdm import tqdm


def trainable(config):
    from ray import tune

    tune.report({"step": 1, "train_loss": 1.0, "val_loss": 1.0, "flops": 1.0})


def run_tune(root: Path, trials: int) -> Path:
    import ray
    from ray import tune

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    tuner = tune.Tuner(
        trainable,
        param_space={"i": tune.grid_search(list(range(trials))), "lr": 1e-3, "width": 16},
        tune_config=tune.TuneConfig(max_concurrent_trials=2, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(root), name="exp", verbose=0),
    )
    tuner.fit()
    ray.shutdown()
    return root / "exp"


def extend(trial_dir: Path, steps: int, seed: int) -> None:
    first = json.loads((trial_dir / "result.json").read_text().splitlines()[0])
    base_t = first.get("timestamp", int(time.time()))
    rows = []
    for s in range(1, steps + 1):
        row = dict(first)
        row.update({
            "step": s, "train_loss": 1.0 / s + (seed % 7) * 1e-3,
            "val_loss": (1.1 / s) if s % 50 == 0 else None, "flops": 1e9 * s,
            "samples": 16 * s, "lr": 1e-3, "grad_norm": 0.5, "wall_s": 0.01 * s,
            "training_iteration": s, "timestamp": base_t + s, "time_this_iter_s": 0.01,
            "time_total_s": 0.01 * s, "done": s == steps,
        })
        if s == steps:
            row["test_loss"] = 1.05 / s
        rows.append(row)
    with open(trial_dir / "result.json", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    # progress.csv: flattened (config/...) like Tune's CSV logger
    flat = []
    for row in rows:
        r = {k: v for k, v in row.items() if k != "config"}
        r.update({f"config/{k}": v for k, v in row.get("config", {}).items()})
        flat.append(r)
    fields = sorted({k for r in flat for k in r})
    with open(trial_dir / "progress.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(flat)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args()
    exp = run_tune(args.root, args.trials)
    dirs = sorted(p.parent for p in exp.glob("*/result.json"))
    for i, d in enumerate(tqdm(dirs, desc="extend trials")):
        extend(d, args.steps, i)
    print(f"{exp}: {len(dirs)} trials", flush=True)
    os._exit(0)


if __name__ == "__main__":
    main()
