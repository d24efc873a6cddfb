"""How far test windows can be thinned (issue 18, point 3): within-trajectory correlation of
per-window test losses, and the clustered SE and loss of every s-th window relative to all.

    OMP_NUM_THREADS=1 python bench/task/bench_stride.py [--test 256] [--steps 600] [--sweep Y]
        [--strides 2,3,4,6]

Trains two transformer 16x2 members (lr 1e-3, 1e-2) as one stack on bench/train's small task
with `--test` test trajectories (`--sweep`: that sweep's task instead, with 64 train,
16 val and `--test` test trajectories), then evaluates them and constant velocity on every test
window. Stride s keeps windows w with w % s == phase: phase 0 for every trajectory
("fixed"), or trajectory index mod s ("rotated": each window position equally represented).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--test", type=int, default=256)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--sweep", help="take the task of this sweep YAML")
    ap.add_argument("--strides", default="2,3,4,6", help="strides compared, comma-separated")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
    import bench_stack

    from equisweep.models import build_model
    from equisweep.task.baselines import constant_velocity
    from equisweep.task.evaluation import clustered_mean, per_window_losses, window_set
    from equisweep.trainer.checkpoint import load_checkpoint
    from equisweep.trainer.data import TrialData
    from equisweep.trainer.stack import run_stack

    if args.sweep:
        import yaml

        bench_stack.TASK.clear()
        bench_stack.TASK.update(yaml.safe_load(Path(args.sweep).read_text())["task"],
                                trajectories=64)
    bench_stack.TASK.update(test_trajectories=args.test, val_trajectories=16)
    size = {"width": 16, "depth": 2}
    cfgs = bench_stack.configs("transformer", size, 2, args.steps, 8)
    ds = TrialData.load(cfgs[0]).test
    with tempfile.TemporaryDirectory() as tmp:
        dirs = [Path(tmp) / "m0", Path(tmp) / "m1"]
        run_stack(cfgs, checkpoint_dirs=dirs)
        models = []
        for d in dirs:
            model = build_model("transformer", size)
            model.load_state_dict(load_checkpoint(d / f"step-{args.steps:08d}")["model"])
            models.append(model.eval())
    predictors = {"transformer lr 1e-3": models[0], "transformer lr 1e-2": models[1],
                  "constant velocity": lambda b: constant_velocity(b, ds.delta)}
    w = ds.windows
    print(f"{len(ds)} test trajectories x {w} windows, delta {ds.delta}")
    for name, predict in predictors.items():
        loss, tokens, traj = per_window_losses(predict, window_set(ds, 1), ds)
        per = loss.reshape(-1, w)
        dev = per - per.mean(1, keepdims=True)
        lags = [(dev[:, :-k] * dev[:, k:]).sum()
                / np.sqrt((dev[:, :-k] ** 2).sum() * (dev[:, k:] ** 2).sum()) for k in (1, 2, 4)]
        full = clustered_mean(loss, tokens, traj)
        pos = np.tile(np.arange(w), len(ds))
        cells = []
        for s in [int(x) for x in args.strides.split(",")]:
            for label, phase in (("fixed", 0), ("rotated", traj % s)):
                keep = pos % s == phase
                e = clustered_mean(loss[keep], tokens[keep], traj[keep])
                cells.append(f"s{s} {label}: SE x{e.se / full.se:.2f}, loss x"
                             f"{e.loss / full.loss:.3f}")
        print(f"{name}: loss {full.loss:.3g}, rse {full.rse:.3f}, lag-1/2/4 correlation "
              + "/".join(f"{c:.2f}" for c in lags) + "; " + "; ".join(cells))


if __name__ == "__main__":
    main()
