"""Does torch.compile pay on CPU (issue 18, point 2)? Compile time and per-step gain of a
compiled model against eager, one training step at a time, in one process.

    OMP_NUM_THREADS=1 python bench/train/bench_compile.py [--family transformer
        --size '{"width": 8, "depth": 1}'] [--rounds 8] [--block 10]

On the CPU study's task (cached small split), the lone trainer's step (batch, loss, backward,
clip, fused AdamW) with the model eager and with `torch.compile(model)`. Compile time: the
compiled model's first step at each padded length the data produce (the study's scenes pad
to a handful of lengths, 28-40 tokens: one graph each, no bucketing needed) minus an eager
step. Then `--rounds` alternating blocks of `--block` steps each, and the median ms per step.
Prints the break-even step count (compile time / per-step gain) against a 2,000-step trial.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--family", default="transformer")
    ap.add_argument("--size", default='{"width": 8, "depth": 1}')
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--block", type=int, default=10)
    ap.add_argument("--trial-steps", type=int, default=2000)
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "task"))
    import bench_eval_share as share

    from equisweep.models import build_model
    from equisweep.train import Settings, _loss, _update

    torch.set_num_threads(1)
    task, _, _, training = share.study("sweeps/cpu-study.yaml", 512)
    size = json.loads(args.size)
    cfg = share.config(task, training, args.family, size, args.trial_steps)
    dev = torch.device("cpu")
    run = Settings.of(cfg, dev)
    trainer = share.Trainer(cfg)
    data = trainer.data
    models = {}
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        model = build_model(args.family, size)
        opt = run.optimizer(model.parameters())
        models[name] = (model, torch.compile(model) if name == "compiled" else model, opt, [])

    def step(name: str, i: int) -> float:
        model, call, opt, _ = models[name]
        batch = data.batch(i, dev)
        t0 = time.perf_counter()
        _update(model, opt, _loss(call, batch, run, dev), 1.0)
        return time.perf_counter() - t0

    lengths, compile_s, i = set(), 0.0, 0
    want = {int(v) for v in data.sampler.batch_tokens(200, run.batch_size)}
    while lengths != want:
        v = int(data.batch(i, dev)["x0"].shape[1])
        if v not in lengths:
            first = step("compiled", i)
            compile_s += first - step("eager", i)
            lengths.add(v)
        i += 1
    for rnd in range(args.rounds + 1):
        for name in models:
            for j in range(args.block):
                t = step(name, i + j)
                if rnd:
                    models[name][3].append(t)
        i += args.block
    med = {name: 1e3 * statistics.median(m[3]) for name, m in models.items()}
    gain = (med["eager"] - med["compiled"]) / 1e3
    even = compile_s / gain if gain > 0 else float("inf")
    print(
        f"{args.family} {args.size}: compile {compile_s:.1f} s for {len(want)} padded "
        f"lengths {sorted(want)}; eager {med['eager']:.2f} ms/step, compiled "
        f"{med['compiled']:.2f} ms/step ({med['eager'] / med['compiled']:.2f}x); break-even "
        f"after {even:.0f} steps (a trial: {args.trial_steps}; the whole {args.trial_steps}-"
        f"step trial {'gains' if even < args.trial_steps else 'loses'} "
        f"{abs(args.trial_steps * gain - compile_s):.1f} s)",
        flush=True,
    )


if __name__ == "__main__":
    main()
