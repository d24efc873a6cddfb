"""Training-step speed of the two model families on CPU.

One step = forward + backward + AdamW on a batch of B scenes of V vertex tokens (synthetic
but shaped like the rigid-body task). Reports the median step time over several steps,
the FLOPs of the step from `count_flops`, the achieved FLOP/s, and this machine's float32
matmul peak (median of big torch.mm) for scale.

    python bench/models/bench_models.py                     # all sizes, torch's threads
    python bench/models/bench_models.py --threads 1 --clock cpu
    python bench/models/bench_models.py --only gatr-ref16 transformer-medium

--clock cpu times with process CPU time instead of wall time: on a machine shared with
other jobs it charges a step only for the CPU it got (use it with --threads 1).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch
from tqdm import tqdm

from equisweep.models import build_model, count_flops, count_params

SIZES = {
    "gatr-small": ("gatr", {"width": 8, "depth": 2}),
    "gatr-medium": ("gatr", {"width": 32, "depth": 5}),
    "gatr-large": ("gatr", {"width": 48, "depth": 6}),
    "gatr-ref16": ("gatr", {"width": 16, "scalars": 64, "depth": 4}),
    "gatr-ref32": ("gatr", {"width": 32, "scalars": 128, "depth": 4}),
    "transformer-small": ("transformer", {"width": 64, "depth": 3}),
    "transformer-medium": ("transformer", {"width": 192, "depth": 6}),
    "transformer-large": ("transformer", {"width": 256, "depth": 8}),
}
# GATr v1.4.3 on this machine (torch 2.13 CPU, batch 16, 128 tokens, fwd+bwd+AdamW),
# as given in the issue: 16 mv / 64 s, 4 blocks -> 1.11 s; 32 mv / 128 s, 4 blocks -> 2.62 s.
REFERENCE_S = {"gatr-ref16": 1.11, "gatr-ref32": 2.62}


def synthetic_batch(batch: int, tokens: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    body = torch.randint(0, 6, (batch, tokens), generator=g)
    centre = torch.randn(batch, 6, 3, generator=g)
    c0 = centre.gather(1, body[..., None].expand(batch, tokens, 3))
    c1 = c0 + 0.05 * torch.randn(batch, 1, 3, generator=g)
    x0 = c0 + 0.3 * torch.randn(batch, tokens, 3, generator=g)
    x1 = x0 + (c1 - c0) + 0.01 * torch.randn(batch, tokens, 3, generator=g)
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    mask[:, int(0.9 * tokens):] = False  # some padding, as in real batches
    up = torch.tensor([0.0, 0.0, 1.0]).expand(batch, 3).clone()
    return dict(x0=x0, x1=x1, c0=c0, c1=c1, y=x1 + (x1 - x0), body=torch.where(mask, body, -1),
                mask=mask, floor_point=torch.zeros(batch, 3), up=up)


def clock(kind: str) -> float:
    return time.process_time() if kind == "cpu" else time.perf_counter()


def matmul_peak(n: int, reps: int, kind: str) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(reps):
        t = clock(kind)
        a @ b
        times.append(clock(kind) - t)
    return 2 * n**3 / statistics.median(times)


def step_time(family: str, size: dict, batch: int, tokens: int, steps: int, kind: str):
    torch.manual_seed(0)
    model = build_model(family, size)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    data = synthetic_batch(batch, tokens)
    mask = data["mask"][..., None]
    times = []
    for i in range(steps + 2):  # two warm-up steps
        t = clock(kind)
        opt.zero_grad(set_to_none=True)
        loss = (((model(data) - data["y"]) ** 2) * mask).sum() / mask.sum()
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(clock(kind) - t)
    return statistics.median(times), times


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="timed steps per size and round")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds over all sizes (interleaved, so load spikes hit all sizes); "
                        "the step time is the median over every timed step of every round")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    p.add_argument("--only", nargs="*", choices=sorted(SIZES), default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.only or list(SIZES)
    peak = matmul_peak(4096, 5, args.clock)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {platform.machine()}, threads {torch.get_num_threads()},"
          f" clock {args.clock}, load average at start {load:.1f}")
    print(f"float32 matmul peak (4096^3 torch.mm, median of 5): {peak / 1e9:.1f} GFLOP/s\n")
    print("| size | family | size dict | params | FLOPs/step | step (s) | GFLOP/s | % peak |"
          " vs GATr v1.4.3 |")
    print("|---|---|---|---|---|---|---|---|---|")
    times = {name: [] for name in names}
    for _ in tqdm(range(args.rounds), desc="rounds", leave=False):
        for name in tqdm(names, desc="sizes", leave=False):
            family, size = SIZES[name]
            times[name] += step_time(family, size, args.batch, args.tokens, args.steps,
                                     args.clock)[1]
    rows = {}
    for name in names:
        family, size = SIZES[name]
        med = statistics.median(times[name])
        flops = count_flops(family, size, tokens=args.tokens, batch_size=args.batch)
        rate = flops / med
        rows[name] = rate
        ref = REFERENCE_S.get(name)
        vs = f"{ref:.2f} s -> {ref / med:.2f}x faster" if ref else ""
        print(f"| {name} | {family} | `{size}` | {count_params(family, size):,} | "
              f"{flops:.3g} | {med:.3f} | {rate / 1e9:.1f} | {100 * rate / peak:.0f}% | {vs} |")
    if "gatr-medium" in rows and "transformer-medium" in rows:
        print(f"\nGATr / transformer achieved FLOP/s at medium size: "
              f"{rows['gatr-medium'] / rows['transformer-medium']:.2f}")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at end {load:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
