"""WSD (one trunk per size, cooldown branches) vs separate cosine runs: compute, time, quality.

    nice -n 10 python bench/sweep/bench_wsd.py --repeats 2
    python bench/sweep/bench_wsd.py --summarize WORKDIR/results.json
    python bench/sweep/bench_wsd.py --repeats 1 --steps 10 20 30 40     # a quick look

One grid, run twice with the real CLI (`equisweep run`, embedded local Ray, cpu: 1 per trial,
max_concurrent: 2): 2 sizes per family (GATr; transformer with augmentation) x 4 lengths
spanning a decade (50, 200, 350, 500 steps), grid search at one fixed learning rate. The two
sweep files differ only in `training.schedule` (cosine vs wsd with the default cooldown 0.2,
linear decay). The dataset is generated beforehand into a shared cache, so neither side pays
for it.

Reported per repeat (order alternating): wall time of the whole `equisweep run` command and
the training FLOPs really spent (`Store.flops_spent`: shared trunk steps once). The arithmetic
prediction is the planned spend over the points' FLOPs (`spec.trunks.planned_spend`):
(S_max + 0.2·ΣS_shorter)/ΣS = (500 + 0.2·600)/1100 = 0.564 per size.
Quality (the last repeat; CPU training is deterministic, so every repeat gives the same
losses): per (family, size, steps) the test loss ± standard error of the WSD trial and of the
cosine trial, their difference, and a verdict: within noise when |Δ| < 2·SE(Δ), with
SE(Δ) = sqrt(se_wsd² + se_cos²) — conservative, since both are measured on the same test
windows and their errors are positively correlated. The 1-minute load average is recorded
before every run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

STEPS = [50, 200, 350, 500]


def sweep_dict(schedule: str, steps=tuple(STEPS)) -> dict:
    every = min(50, min(steps))
    training = {"batch_size": 8, "schedule": schedule, "warmup": 0.05, "eval_every": every,
                "checkpoint_every": every}
    return {
        "name": f"bench-{schedule}",
        "task": {"name": "rigid_body", "trajectories": 128, "bodies": [3, 5], "vertices": 8,
                 "frames": 48, "val_trajectories": 32, "test_trajectories": 64, "seed": 0},
        "families": {
            "gatr": {"sizes": [{"width": 4, "depth": 1}, {"width": 8, "depth": 2}]},
            "transformer": {"sizes": [{"width": 32, "depth": 2}, {"width": 64, "depth": 2}],
                            "augment": True},
        },
        "grid": {"steps": list(steps), "train_trajectories": [128], "seed": [0]},
        "search": {"method": "grid", "params": {"lr": 2.0e-3}},
        "training": training,
        "resources": {"cpu": 1},
        "max_concurrent": 2,
        "retries": 1,
    }


def load() -> float:
    return os.getloadavg()[0]


def run_one(work: Path, schedule: str, rep: int) -> dict:
    sweep = work / f"{schedule}.yaml"
    store = work / f"store-{schedule}-{rep}"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    before = load()
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "equisweep.cli", "run", str(sweep), "--store", str(store),
         "--data-dir", str(work / "data"), "--no-progress"],
        env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{schedule} run failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    from equisweep.store import open_store

    s = open_store(store)
    name = f"bench-{schedule}"
    final = s.final(sweep=name).to_pylist()
    points = sum(r["flops_per_step"] * r["steps"] for r in s.trials(sweep=name).to_pylist())
    return {"schedule": schedule, "rep": rep, "wall_s": wall, "load_before": before,
            "spent_flops": s.flops_spent(name)[name], "points_flops_planned": points,
            "trials": [{k: r.get(k) for k in ("family", "size", "steps", "test_loss",
                                               "test_loss_se", "status", "trunk", "fork_step",
                                               "augment", "n_params")} for r in final]}


def prepare(work: Path, steps) -> dict:
    from equisweep.spec import parse_spec, trunks
    from equisweep.task import ensure_dataset

    out = {}
    for schedule in ("cosine", "wsd"):
        d = sweep_dict(schedule, steps)
        (work / f"{schedule}.yaml").write_text(yaml.safe_dump(d))
        spec = parse_spec(d, source=schedule)
        out[schedule] = trunks.planned_spend(spec)
    ensure_dataset(spec.task, cache_dir=str(work / "data"), progress=True)
    return out


def _size(s) -> str:
    s = json.loads(s) if isinstance(s, str) else s
    return f"w{s['width']}d{s['depth']}"


def summarize(res: dict) -> str:
    runs = res["runs"]
    lines = []
    med = {}
    for schedule in ("cosine", "wsd"):
        mine = [r for r in runs if r["schedule"] == schedule]
        med[schedule] = {"wall_s": statistics.median(r["wall_s"] for r in mine),
                         "spent_flops": statistics.median(r["spent_flops"] for r in mine)}
        walls = ", ".join(f"{r['wall_s']:.0f}" for r in mine)
        loads = ", ".join(f"{r['load_before']:.1f}" for r in mine)
        lines.append(
            f"{schedule:6s}: wall {walls} s (median {med[schedule]['wall_s']:.0f} s; load "
            f"before {loads}), training FLOPs spent {med[schedule]['spent_flops']:.3e}")
    plan = res["planned"]["wsd"]
    lines.append(
        f"wsd/cosine: FLOPs {med['wsd']['spent_flops'] / med['cosine']['spent_flops']:.3f} "
        f"(arithmetic: {plan['spend_flops'] / plan['points_flops']:.3f}), wall "
        f"{med['wsd']['wall_s'] / med['cosine']['wall_s']:.2f}")
    last = {s: max((r for r in runs if r["schedule"] == s), key=lambda r: r["rep"])
            for s in ("cosine", "wsd")}
    cos = {(t["family"], _size(t["size"]), t["steps"]): t for t in last["cosine"]["trials"]}
    lines.append("")
    lines.append("| family | size | steps | cosine test loss | WSD test loss | Δ (WSD − cos) "
                 "| Δ / SE(Δ) | verdict |")
    lines.append("|---|---|---|---|---|---|---|---|")
    tally = {"within noise": 0, "WSD better": 0, "WSD worse": 0, "no SE": 0}
    for t in sorted(last["wsd"]["trials"], key=lambda t: (t["family"], t["n_params"],
                                                         t["steps"])):
        k = (t["family"], _size(t["size"]), t["steps"])
        c = cos[k]
        d = t["test_loss"] - c["test_loss"]
        if t.get("test_loss_se") is None or c.get("test_loss_se") is None:
            se, z, verdict = None, None, "no SE"
        else:
            se = math.hypot(t["test_loss_se"], c["test_loss_se"])
            z = d / se if se > 0 else math.inf
            verdict = "within noise" if abs(z) < 2 else ("WSD better" if z < 0 else "WSD worse")
        tally[verdict] += 1

        def pm(r):
            se_ = r.get("test_loss_se")
            return f"{r['test_loss']:.4g}" + (f" ± {se_:.2g}" if se_ is not None else "")

        lines.append(f"| {k[0]} | {k[1]} | {k[2]} | {pm(c)} | {pm(t)} | {d:+.3g} | "
                     f"{'' if z is None else f'{z:+.2f}'} | {verdict} |")
    lines.append("")
    lines.append(", ".join(f"{v} {k}" for k, v in tally.items() if v))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--summarize", metavar="RESULTS.json")
    ap.add_argument("--steps", type=int, nargs=4, default=STEPS,
                    help="the four lengths (default: %(default)s; e.g. 10 20 30 40 to try it)")
    args = ap.parse_args()
    if args.summarize:
        print(summarize(json.loads(Path(args.summarize).read_text())))
        return
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-wsd-"))
    work.mkdir(parents=True, exist_ok=True)
    res = {"planned": prepare(work, args.steps), "steps": args.steps, "runs": [],
           "cpus": os.cpu_count()}
    for rep in range(args.repeats):
        order = ("cosine", "wsd") if rep % 2 == 0 else ("wsd", "cosine")
        for schedule in order:
            r = run_one(work, schedule, rep)
            print(f"rep {rep} {schedule}: {r['wall_s']:.0f} s, {r['spent_flops']:.3e} FLOPs, "
                  f"load {r['load_before']:.1f}", flush=True)
            res["runs"].append(r)
            (work / "results.json").write_text(json.dumps(res, indent=1, default=str))
    print(f"results: {work / 'results.json'}")
    print(summarize(res))


if __name__ == "__main__":
    main()
