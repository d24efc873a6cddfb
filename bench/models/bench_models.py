"""Training-step speed of the registered model families on CPU.

One step = forward + backward + AdamW on a batch of B scenes of V vertex tokens (synthetic
but shaped like the rigid-body task). Reports the median step time over several steps,
the FLOPs of the step from `count_flops`, the achieved FLOP/s, and this machine's float32
matmul peak (median of big torch.mm) for scale. The sizes are each family's own ladder
(read from the registry): rows are named <family>-L<ladder index>.

    python bench/models/bench_models.py                     # every family, torch's threads
    python bench/models/bench_models.py --threads 1 --clock cpu
    python bench/models/bench_models.py --family egnn --max-params 1e6
    python bench/models/bench_models.py --only gatr-L4 transformer-L5

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

from equisweep.models import FAMILIES, build_model, count_flops, count_params, validate_size

# The reference implementation (GATr v1.4.3) on this machine (torch 2.13 CPU, batch 16,
# 128 tokens, fwd+bwd+AdamW, two threads, wall clock), as given in issue 3, for the two
# ladder sizes it was measured at: 16 mv / 64 s / 4 blocks and 32 mv / 128 s / 4 blocks.
REFERENCE = {("gatr", (("width", 16), ("depth", 4), ("scalars", 64), ("heads", 8))): 1.11,
             ("gatr", (("width", 32), ("depth", 4), ("scalars", 128), ("heads", 8))): 2.62}


def ladder_rows(families, min_params: float, max_params: float) -> dict:
    """name -> (family, size) for the ladder sizes within the parameter range."""
    rows = {}
    for family in families:
        for i, size in enumerate(FAMILIES[family].ladder):
            if min_params <= count_params(family, size) <= max_params:
                rows[f"{family}-L{i}"] = (family, dict(size))
    return rows


def reference_s(family: str, size: dict) -> float | None:
    return REFERENCE.get((family, tuple(validate_size(family, size).items())))


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
    p.add_argument("--family", nargs="*", choices=sorted(FAMILIES), default=sorted(FAMILIES))
    p.add_argument("--min-params", type=float, default=2e4)
    p.add_argument("--max-params", type=float, default=4e6,
                   help="ladder sizes within [min, max] parameters (default 2e4-4e6)")
    p.add_argument("--only", nargs="*", default=None, help="row names, e.g. gatr-L4")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    SIZES = ladder_rows(sorted(FAMILIES), 0, float("inf"))
    if args.only:
        unknown = [n for n in args.only if n not in SIZES]
        if unknown:
            p.error(f"unknown row {unknown[0]!r}; rows: {', '.join(SIZES)}")
        names = list(args.only)
    else:
        names = list(ladder_rows(args.family, args.min_params, args.max_params))
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
    rates = {}
    for name in names:
        family, size = SIZES[name]
        med = statistics.median(times[name])
        flops = count_flops(family, size, tokens=args.tokens, batch_size=args.batch)
        rate = flops / med
        rates[name] = (family, count_params(family, size), rate)
        ref = reference_s(family, size)
        vs = f"{ref:.2f} s -> {ref / med:.2f}x faster" if ref else ""
        print(f"| {name} | {family} | `{size}` | {count_params(family, size):,} | "
              f"{flops:.3g} | {med:.3f} | {rate / 1e9:.1f} | {100 * rate / peak:.0f}% | {vs} |")
    print("\nachieved FLOP/s at the benchmarked size nearest 1e6 parameters:")
    for family in dict.fromkeys(f for f, _, _ in rates.values()):
        mine = [(abs(n / 1e6 - 1), name, r) for name, (f, n, r) in rates.items() if f == family]
        _, name, rate = min(mine)
        print(f"  {family}: {name} {rate / 1e9:.1f} GFLOP/s ({100 * rate / peak:.0f}% of peak)")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average at end {load:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
