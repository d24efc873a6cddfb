"""Ray overhead: 16 trials of fixed work under `equisweep run` vs the same work without Ray.

    python bench/sweep/bench_overhead.py --repeats 3
    python bench/sweep/bench_overhead.py --repeats 1 --steps 100     # a quick look

Both sides run the same 16 trial configs (2 families x 8 learning rates, grid search, fixed
step count, same eval/checkpoint cadence, checkpoints written to disk on both sides) from a
dataset generated beforehand into a shared cache, so neither side pays for generation.

- ray:    the real CLI, `equisweep run SWEEP.yaml --store <fresh> --data-dir <cache>`, on an
          embedded local Ray (RAY_ADDRESS unset), resources cpu: 1, max_concurrent: 2. Timed
          as the whole command: interpreter start, Ray start-up, Tune, the store callback,
          Ray shutdown.
- direct: `python bench_overhead.py _direct ...`, a fresh interpreter that runs
          `equisweep.train.run_trial` over the same configs in a 2-process pool (spawn: each
          worker imports torch itself, as a Ray worker does; torch.set_num_threads(1); the
          workers run at Ray's worker niceness, +15 over the parent), writing checkpoints
          like the trainable does. Timed as the whole command too.

On a shared machine run it as `nice -n -15 python bench/sweep/...` (root): both sides' trial
processes then run at niceness 0, level with the machine's other work, and Ray's daemons keep
the priority over them that Ray gives them by default.

Each repeat runs both sides back to back (alternating which goes first) on a fresh store.
Reported: per-side wall time, the median over repeats, the ratio ray/direct, the 1-minute
load average before each run, and a breakdown of the Ray side (time to the first trial
start, time after the last trial end, the trials' own training time) from the store's
started_at/ended_at and wall_s columns, and the ratio at equal training speed (see
`summarize`). Results also go to WORKDIR/results.json; reprint a summary of one with
`python bench/sweep/bench_overhead.py --summarize WORKDIR/results.json`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

LRS = [3e-4, 4e-4, 5e-4, 7e-4, 1e-3, 1.4e-3, 2e-3, 3e-3]


def sweep_dict(steps: int) -> dict:
    return {
        "name": "bench-overhead",
        "task": {"name": "rigid_body", "trajectories": 64, "bodies": [3, 5], "vertices": 8,
                 "frames": 48, "val_trajectories": 16, "test_trajectories": 16, "seed": 0},
        # Sizes chosen so a trial of either family takes about as long (GATr is slower per
        # parameter): the two-at-a-time schedule then packs evenly on both sides.
        "families": {"gatr": {"sizes": [{"width": 4, "depth": 1}]},
                     "transformer": {"sizes": [{"width": 128, "depth": 2}]}},
        "grid": {"steps": [steps], "train_trajectories": [64], "seed": [0]},
        "search": {"method": "grid", "params": {"lr": {"choice": LRS}}},
        "training": {"batch_size": 16, "eval_every": 50, "checkpoint_every": 100,
                     "schedule": "cosine", "warmup": 0.05},
        "resources": {"cpu": 1},
        "max_concurrent": 2,
        "retries": 0,
    }


def load() -> float:
    return os.getloadavg()[0]


# ---------------------------------------------------------------- direct side (subprocess)

def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    # Ray's raylet starts its workers `worker_niceness` (default 15) above itself; give the
    # direct workers the same priority so a busy machine slows both sides alike.
    os.nice(int(os.environ.get("RAY_worker_niceness", "15")))


def _one_trial(args: tuple[dict, str, str]) -> dict:
    from equisweep.train import run_trial

    config, data_dir, ckpt_root = args
    workdir = tempfile.mkdtemp(prefix="direct-", dir=ckpt_root)
    t0 = time.time()
    rows = run_trial(config, data_dir=data_dir, checkpoint_dir=workdir)
    t1 = time.time()
    shutil.rmtree(workdir, ignore_errors=True)
    last = rows[-1]
    return {"started": t0, "ended": t1, "status": last.get("status"),
            "wall_s": last["wall_s"], "test_loss": last.get("test_loss")}


def direct_main(configs_path: str, data_dir: str, ckpt_root: str, out: str) -> None:
    import multiprocessing as mp

    configs = json.loads(Path(configs_path).read_text())
    ctx = mp.get_context("spawn")
    with ctx.Pool(2, initializer=_init_worker, maxtasksperchild=None) as pool:
        results = list(pool.imap(_one_trial, [(c, data_dir, ckpt_root) for c in configs],
                                 chunksize=1))
    Path(out).write_text(json.dumps(results))


# ---------------------------------------------------------------- driver

def equisweep_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("equisweep")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-c", "import sys; from equisweep.cli import main; "
            "sys.exit(main())"]


def run_ray(work: Path, rep: int) -> dict:
    from equisweep.store import open_store

    store = work / f"store-{rep}"
    shutil.rmtree(store, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    cmd = equisweep_cmd() + ["run", str(work / "sweep.yaml"), "--store", str(store),
                             "--data-dir", str(work / "data"), "--no-progress"]
    la = load()
    t0 = time.time()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    t1 = time.time()
    if proc.returncode != 0:
        sys.exit(f"equisweep run failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    final = open_store(store).final(sweep="bench-overhead").to_pylist()
    statuses = [r["status"] for r in final]
    if len(final) != 16 or set(statuses) != {"finished"}:
        sys.exit(f"ray side: expected 16 finished trials, got {statuses}")
    from equisweep.spec import trial_key

    planned = {trial_key(c) for c in json.loads((work / "configs.json").read_text())}
    if {r["key"] for r in final} != planned:
        sys.exit("ray side: the trials Tune ran are not the configs the direct side runs")
    starts = [r["started_at"].timestamp() for r in final]
    ends = [r["ended_at"].timestamp() for r in final]
    shutil.rmtree(store, ignore_errors=True)
    return {"side": "ray", "wall": t1 - t0, "load": la,
            "to_first_start": min(starts) - t0, "after_last_end": t1 - max(ends),
            "trial_span_sum": sum(e - s for s, e in zip(starts, ends)),
            "train_wall_sum": sum(float(r["wall_s"]) for r in final)}


def run_direct(work: Path, rep: int) -> dict:
    out = work / f"direct-{rep}.json"
    ckpt = work / "ckpt"
    ckpt.mkdir(exist_ok=True)
    cmd = [sys.executable, __file__, "_direct", str(work / "configs.json"),
           str(work / "data"), str(ckpt), str(out)]
    la = load()
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    t1 = time.time()
    if proc.returncode != 0:
        sys.exit(f"direct side failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    res = json.loads(out.read_text())
    statuses = [r["status"] for r in res]
    if len(res) != 16 or set(statuses) != {"finished"}:
        sys.exit(f"direct side: expected 16 finished trials, got {statuses}")
    return {"side": "direct", "wall": t1 - t0, "load": la,
            "to_first_start": min(r["started"] for r in res) - t0,
            "after_last_end": t1 - max(r["ended"] for r in res),
            "trial_span_sum": sum(r["ended"] - r["started"] for r in res),
            "train_wall_sum": sum(r["wall_s"] for r in res)}


def prepare(work: Path, steps: int) -> None:
    from equisweep.spec import parse_spec
    from equisweep.task import ensure_dataset

    work.mkdir(parents=True, exist_ok=True)
    d = sweep_dict(steps)
    (work / "sweep.yaml").write_text(yaml.safe_dump(d))
    spec = parse_spec(d, source=str(work / "sweep.yaml"))
    trials = spec.trials()
    if len(trials) != 16:
        sys.exit(f"expected 16 trials, the spec gives {len(trials)}")
    # Spec order: the order the driver's searcher hands them to Tune.
    (work / "configs.json").write_text(json.dumps([t.to_dict() for t in trials]))
    ensure_dataset(spec.task, cache_dir=str(work / "data"), progress=True)


def fmt(r: dict) -> str:
    return (f"{r['side']:>6}: wall {r['wall']:7.1f} s  load {r['load']:5.2f}  "
            f"first start +{r['to_first_start']:5.1f} s  "
            f"after last end {r['after_last_end']:5.1f} s  "
            f"trial spans {r['trial_span_sum']:6.1f} s  training {r['train_wall_sum']:6.1f} s")


def summarize(summary: dict) -> dict:
    """Print and add the medians, the raw ratio, and the ratio at equal training speed.

    The raw ratio carries whatever the machine's other load did to each run. The second one
    does not: `outside` = wall - (training-loop time / 2 workers) is the time a side spent
    on anything but the trials' optimizer steps (start-up, evaluation, checkpoints, Ray,
    idle tails), and the equal-speed ratio is (D + outside_ray) / (D + outside_direct) with
    D the shortest training makespan of the direct runs (other load only ever lengthens it,
    and a shorter D makes a fixed overhead weigh more: the conservative choice).
    """
    results = summary["runs"]
    sides = [s for s in ("ray", "direct") if any(r["side"] == s for r in results)]
    print()
    for side in sides:
        runs = [r for r in results if r["side"] == side]
        walls = [r["wall"] for r in runs]
        summary[side] = statistics.median(walls)
        summary[side + "_outside"] = statistics.median(
            r["wall"] - r["train_wall_sum"] / 2 for r in runs)
        print(f"{side:>6}: median wall {summary[side]:.1f} s over {len(walls)} runs "
              f"({', '.join(f'{w:.1f}' for w in walls)}); median outside the training "
              f"loop {summary[side + '_outside']:.1f} s")
    if len(sides) == 2:
        summary["ratio"] = summary["ray"] / summary["direct"]
        pairs = []
        for rep in sorted({r["repeat"] for r in results}):
            w = {r["side"]: r["wall"] for r in results if r["repeat"] == rep}
            if len(w) == 2:
                pairs.append(w["ray"] / w["direct"])
        d = min(r["train_wall_sum"] / 2 for r in results if r["side"] == "direct")
        summary["ratio_equal_speed"] = ((d + summary["ray_outside"])
                                        / (d + summary["direct_outside"]))
        print(f" ratio: ray / direct = {summary['ratio']:.3f} of the medians; per repeat "
              f"{', '.join(f'{x:.3f}' for x in pairs)}; at equal training speed "
              f"{summary['ratio_equal_speed']:.3f} (D = {d:.1f} s); target <= 1.25")
    print(f"  load: {os.getloadavg()[0]:.2f} now, "
          f"{min(r['load'] for r in results):.2f}..{max(r['load'] for r in results):.2f}"
          " before the runs")
    return summary


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--summarize":
        summarize(json.loads(Path(sys.argv[2]).read_text()))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_direct":
        direct_main(*sys.argv[2:6])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=400, help="training steps per trial")
    ap.add_argument("--workdir", default=None,
                    help="folder for the sweep file, dataset cache and stores "
                         "(default: a temporary folder, removed at the end)")
    ap.add_argument("--only", choices=("ray", "direct"), default=None)
    args = ap.parse_args()

    tmp = None
    if args.workdir:
        work = Path(args.workdir).resolve()
    else:
        tmp = tempfile.mkdtemp(prefix="equisweep-bench-sweep-")
        work = Path(tmp)
    try:
        prepare(work, args.steps)
        results = []
        from tqdm import tqdm

        sides = {"ray": run_ray, "direct": run_direct}
        order = [args.only] if args.only else ["ray", "direct"]
        for rep in tqdm(range(args.repeats), desc="repeats", unit="repeat"):
            for side in (order if rep % 2 == 0 else order[::-1]):
                r = sides[side](work, rep)
                r["repeat"] = rep
                results.append(r)
                tqdm.write(fmt(r))
        summary = summarize({"steps": args.steps, "repeats": args.repeats, "runs": results})
        (work / "results.json").write_text(json.dumps(summary, indent=1))
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
