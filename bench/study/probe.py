"""Design probes for a study: single trials run directly (no Ray), a few at a time.

    python bench/study/probe.py JOBS.jsonl RESULTS.jsonl    # PROBE_WORKERS=2 by default

Each line of JOBS is {"yaml", "family", "size", "steps", "lr"} plus optional "batch" (8),
"delta" (8) and "augment" (false): the trial is the sweep file's first cell of that family,
with this size, length, learning rate, batch and horizon, evaluated every steps/5 and on the
file's test set at the end. Each result line adds the final test loss and its clustered SE,
the wall and CPU seconds (one thread) and the validation curve. The CPU study's probes are
bench/study/probes-cpu-study.jsonl (docs/results/cpu-study.md reads them).
"""

from __future__ import annotations

import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor

os.environ.setdefault("OMP_NUM_THREADS", "1")


def probe(job: dict) -> dict:
    import torch

    from equisweep.models import validate_size
    from equisweep.spec.load import load_spec
    from equisweep.train import run_trial

    torch.set_num_threads(1)
    spec = load_spec(job["yaml"])
    augment = bool(job.get("augment", False))
    cell = next(c for c in spec.cells() if c.family == job["family"] and c.augment == augment)
    t = spec.cell_trial(cell, {"lr": job["lr"]}).to_dict()
    t["size"] = validate_size(t["family"], job["size"])
    t["steps"] = int(job["steps"])
    t["training"]["batch_size"] = int(job.get("batch", 8))
    t["training"]["eval_every"] = max(t["steps"] // 5, 1)
    t["training"]["checkpoint_every"] = 10**9  # no checkpoints: only the training is timed
    t["task"]["delta"] = int(job.get("delta", 8))
    t0, c0 = time.time(), time.process_time()
    rows = run_trial(t)
    wall, cpu = time.time() - t0, time.process_time() - c0
    last = rows[-1]
    return {**{k: job[k] for k in ("family", "size", "steps", "lr")},
            "batch": t["training"]["batch_size"], "delta": t["task"]["delta"], "augment": augment,
            "test_trajectories": t["task"]["test_trajectories"],
            "test": last.get("test_loss"), "se": last.get("test_loss_se"),
            "wall": round(wall, 1), "cpu": round(cpu, 1), "status": last.get("status"),
            "val": [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    try:
        jobs = [json.loads(line) for line in open(argv[0]) if line.strip()]
    except (OSError, json.JSONDecodeError) as err:
        print(f"probe: {argv[0]}: {err}", file=sys.stderr)
        return 2
    workers = int(os.environ.get("PROBE_WORKERS", 2))
    with open(argv[1], "a") as out, ProcessPoolExecutor(workers) as ex:
        for r in ex.map(probe, jobs):
            print(json.dumps(r), flush=True)
            out.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
