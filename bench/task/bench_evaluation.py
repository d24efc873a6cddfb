"""Evaluation precision and cost (issue 9): numbers for bench/BENCHMARKS.md.

    python bench/task/bench_evaluation.py windows SWEEP.yaml [--test N --val N --delta D ...]
        zero-parameter baselines on the sweep's fixed windows: loss, clustered relative SE,
        the SE at other strides, and the SE an iid formula would claim
    python bench/task/bench_evaluation.py store STORE SWEEP
        a finished sweep: test_loss_se / test_loss, evaluation share of each trial's FLOPs,
        best skill per family (by val_loss and overall)

`windows` generates the dataset if needed (MuJoCo, one process); `--train 1` keeps a
study-sized val/test set from paying for the study's train pool.
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np


def windows(args) -> None:
    from equisweep.spec import load_spec
    from equisweep.task import RigidBodyDataset, ensure_dataset
    from equisweep.task.baselines import BASELINES, predictor
    from equisweep.task.evaluation import (
        clustered_mean,
        eval_windows,
        per_window_losses,
        window_set,
    )
    from equisweep.task.generate import load_manifest

    task = load_spec(args.sweep).task
    changes = {k: v for k, v in (("trajectories", args.train), ("val_trajectories", args.val),
                                 ("test_trajectories", args.test)) if v is not None}
    task = task.replace(**changes)
    path = ensure_dataset(task, workers=1, progress=False)
    m = load_manifest(path)
    for delta in args.delta or [task.delta]:
        for split in ("val", "test"):
            ds = RigidBodyDataset(path, split=split, delta=delta)
            fixed = eval_windows(ds)
            print(f"delta {delta} {split}: {len(ds)} trajectories, fixed set {len(fixed)} "
                  f"windows (stride {fixed.stride}, {fixed.trajectories} trajectories)")
            for name in BASELINES:
                f = predictor(name, delta, m["frame_dt"], m["config"]["gravity"])
                cells = []
                for stride in (1, 2, 4):
                    w = window_set(ds, stride, fixed.trajectories)
                    loss, n, traj = per_window_losses(f, w, ds)
                    est = clustered_mean(loss, n, traj)
                    iid = np.sqrt(np.cov(loss, aweights=n) / len(loss)) / est.loss
                    mark = "*" if stride == fixed.stride else ""
                    cells.append(f"stride {stride}{mark}: rse {est.rse:.3f} (iid {iid:.3f})")
                    if stride == fixed.stride:
                        head = f"  {name:<18} loss {est.loss:.4g} ± {est.se:.2g}"
                print(head + "  |  " + ";  ".join(cells))


def store(args) -> None:
    from equisweep.store import open_store
    from equisweep.store.best import best_trials

    st = open_store(args.store, must_exist=True)
    final = [r for r in st.final(args.sweep).to_pylist() if r["status"] == "finished"]
    rse = [r["test_loss_se"] / r["test_loss"] for r in final if r["test_loss"]]
    share = [r["eval_flops"] / (r["eval_flops"] + r["flops"]) for r in final
             if r["eval_flops"] is not None]
    print(f"{len(final)} finished trials; test windows {final[0]['test_windows']}")
    print(f"test_loss_se / test_loss: median {statistics.median(rse):.3f}, "
          f"range {min(rse):.3f}-{max(rse):.3f}")
    print(f"evaluation share of trial FLOPs: median {statistics.median(share):.3f}, "
          f"range {min(share):.3f}-{max(share):.3f}")
    by_steps: dict[int, list[float]] = {}
    for r in final:
        by_steps.setdefault(r["steps"], []).append(r["eval_flops"] /
                                                   (r["eval_flops"] + r["flops"]))
    for steps, v in sorted(by_steps.items()):
        print(f"  {steps} steps: eval share median {statistics.median(v):.3f}")
    for b in st.baselines(args.sweep).to_pylist():
        print(f"baseline {b['split']} {b['baseline']}: {b['loss']:.4g} ± {b['loss_se']:.2g} "
              f"(rse {b['loss_se'] / b['loss']:.3f}, {b['windows']} windows)")
    for r in best_trials(st.final(args.sweep), per="variant").to_pylist():
        print(f"best by val_loss {r['family']}{'+aug' if r['augment'] else ''}: "
              f"{r['key']} steps {r['steps']} test {r['test_loss']:.4g} ± "
              f"{r['test_loss_se']:.2g} skill {r['skill']:+.3f}")
    fams = sorted({r["family"] for r in final})
    for fam in fams:
        best = max((r for r in final if r["family"] == fam), key=lambda r: r["skill"])
        print(f"highest skill {fam}: {best['skill']:+.3f} ({best['key']}, steps "
              f"{best['steps']}, lr {best['hp_lr']:.3g})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("windows")
    w.add_argument("sweep")
    w.add_argument("--train", type=int)
    w.add_argument("--val", type=int)
    w.add_argument("--test", type=int)
    w.add_argument("--delta", type=int, action="append")
    s = sub.add_parser("store")
    s.add_argument("store")
    s.add_argument("sweep")
    args = p.parse_args()
    windows(args) if args.cmd == "windows" else store(args)


if __name__ == "__main__":
    main()
