"""Evaluation's share of a trial's wall (issue 18, point 3): the final test evaluation and
the val evaluations of a 2,000-step trial against its training wall, under several test
window rules, in one process.

    OMP_NUM_THREADS=1 python bench/task/bench_eval_share.py [--strides 3,6,8] [--test 512]
        [--scale-test 2048] [--sweep sweeps/cpu-study.yaml] [--family gatr --size '{...}']

Takes the sweep's task with 64 train, 16 val and `--test` test trajectories (the CPU study's
shape: delta 8, 23 windows per trajectory; for val, the sweep's own val set and 16 test) and
each family's largest study size. Every evaluation batch (built, predicted and scored as
the trainer does, length-sorted) is followed by `--between` training steps of the trainer's
own pieces (batch, loss, update), so evaluation and training are timed under the same load
as it drifts on a shared machine. Test time is scaled linearly to `--scale-test` test
trajectories (the study's 2048) and set against 2,000 steps at the median step time.
Evaluation time does not depend on the weights, so the model is only partly trained.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch


def study(sweep: str, test: int) -> tuple[dict, dict, dict, dict]:
    """(task for test, task for val, families' sizes, training) of the sweep: a small train
    pool, `test` test trajectories with few val ones, or the sweep's val set with few test
    ones (two small datasets instead of one with both)."""
    import yaml

    doc = yaml.safe_load(Path(sweep).read_text())
    task = {**doc["task"], "trajectories": 64}
    return (
        {**task, "val_trajectories": 16, "test_trajectories": test},
        {**task, "test_trajectories": 16},
        doc["families"],
        doc["training"],
    )


def config(task: dict, training: dict, family: str, size: dict, steps: int) -> dict:
    from equisweep.spec import parse_spec

    spec = parse_spec(
        {
            "name": "bench-eval-share",
            "task": task,
            "families": {family: {"sizes": [size]}},
            "grid": {"steps": [steps], "train_trajectories": [64], "seed": [0]},
            "search": {"method": "grid", "params": {"lr": 6e-3}},
            "training": {**training, "eval_every": steps, "checkpoint_every": steps},
        }
    )
    (cell,) = spec.cells()
    return spec.cell_trial(cell, {"lr": 6e-3}).to_dict()


class Trainer:
    """The trainer's own step (batch, loss, update) on one trial's model, timed step by step."""

    def __init__(self, cfg: dict):
        from equisweep.models import build_model
        from equisweep.train import Settings
        from equisweep.trainer.data import TrialData

        self.dev = torch.device("cpu")
        self.run = Settings.of(cfg, self.dev)
        self.data = TrialData.load(cfg)
        torch.manual_seed(self.run.seed)
        self.model = build_model(self.run.family, self.run.size)
        self.opt = self.run.optimizer(self.model.parameters())
        self.step = 0

    def steps(self, n: int) -> list[float]:
        from equisweep.train import _loss, _update

        self.model.train()
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            batch = self.data.batch(self.step, self.dev)
            for group in self.opt.param_groups:
                group["lr"] = self.run.lr(self.step)
            _update(
                self.model,
                self.opt,
                _loss(self.model, batch, self.run, self.dev),
                float(self.run.hp["grad_clip"]),
            )
            out.append(time.perf_counter() - t0)
            self.step += 1
        return out


def interleaved(
    trainer: Trainer, windows, dataset, eval_batch: int, between: int
) -> tuple[float, float]:
    """(seconds of evaluating `windows` as the trainer does: build each batch, predict, per
    window loss; median seconds of a training step), each evaluation batch followed by
    `between` training steps, so both see the same load as it drifts."""
    steps, spent = [], 0.0
    batches = windows.batches(dataset, eval_batch)
    while True:
        trainer.model.eval()
        t0 = time.perf_counter()
        batch = next(batches, None)
        if batch is None:
            break
        with torch.no_grad():
            pred = trainer.model(batch[0])
            ((pred - batch[0]["y"]) ** 2).sum(dim=(-2, -1)).numpy()
        spent += time.perf_counter() - t0
        steps += trainer.steps(between)
    return spent, statistics.median(steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sweep", default="sweeps/cpu-study.yaml")
    ap.add_argument("--test", type=int, default=512, help="test trajectories generated")
    ap.add_argument(
        "--scale-test", type=int, default=2048, help="test trajectories the shares are scaled to"
    )
    ap.add_argument("--trial-steps", type=int, default=2000)
    ap.add_argument(
        "--between", type=int, default=2, help="training steps timed after each evaluation batch"
    )
    ap.add_argument("--family", help="one family (default: each family's largest size)")
    ap.add_argument("--size", help="its size as JSON")
    ap.add_argument("--strides", default="3,6,8")
    ap.add_argument("--batch", type=int, default=64, help="evaluation batch")
    args = ap.parse_args()
    from equisweep.task.evaluation import window_set

    task, val_task, families, training = study(args.sweep, args.test)
    if args.family:
        picks = [(args.family, json.loads(args.size))]
    else:
        picks = [(f, spec["sizes"][0]) for f, spec in families.items()]  # largest first
    scale = args.scale_test / args.test
    evals = args.trial_steps // int(training["eval_every"])
    for family, size in picks:
        trainer = Trainer(config(task, training, family, size, args.trial_steps))
        trainer.steps(10)  # warm-up
        test = trainer.data.test
        print(
            f"{family} {json.dumps(size)}: test {len(test)} trajectories x {test.windows} "
            f"windows, scaled x{scale:g}; {args.trial_steps} steps; eval batch {args.batch}",
            flush=True,
        )
        for stride in [int(s) for s in args.strides.split(",")]:
            windows = window_set(test, stride, rotate=True)
            spent, step = interleaved(trainer, windows, test, args.batch, args.between)
            train_s = step * args.trial_steps
            print(
                f"  test rotated stride {stride:>2}: {len(windows) * scale:.0f} windows "
                f"{spent * scale:.2f} s; training {1e3 * step:.2f} ms/step -> "
                f"{train_s:.1f} s; test = {100 * spent * scale / train_s:.1f}% of training",
                flush=True,
            )
        val_trainer = Trainer(config(val_task, training, family, size, args.trial_steps))
        val_trainer.model, val_trainer.opt = trainer.model, trainer.opt
        val = val_trainer.data.val_windows
        spent, step = interleaved(val_trainer, val, val_trainer.data.val, args.batch, args.between)
        print(
            f"  val ({len(val)} windows, stride {val.stride}, {val.trajectories} "
            f"trajectories) x {evals} evaluations: {evals * spent:.2f} s = "
            f"{100 * evals * spent / (step * args.trial_steps):.1f}% of training",
            flush=True,
        )


if __name__ == "__main__":
    main()
