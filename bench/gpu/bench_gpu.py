"""GPU throughput of the study's sizes, stacked K = 1, 8, 32, and one stacked WSD share end
to end into a store (issue 18, point 4). Needs only PyTorch (with numpy, pyarrow, PyYAML) on
the host: no Ray, MuJoCo or Optuna (their imports are blocked here, so a path that needed one
fails loudly rather than silently on the host).

    python bench/gpu/bench_gpu.py [--device cuda] [--precision bf16|fp32] [--budget 420]
    python bench/gpu/bench_gpu.py --device cpu --quick          # any machine, a minute or two
    python bench/gpu/bench_gpu.py --make-data                   # where MuJoCo is (once)

The dataset travels with the script: bench/gpu/data/ (the CPU study's task — bodies 3-5,
8 vertices, 32 frames, delta 8 — with 512 train, 16 val and 64 test trajectories, ~2.5 MiB),
written by --make-data and committed. For each study size (GATr ×5, transformer ×5 without
and with augmentation) and K, K trials differing only in lr train as one stack (K = 1: the
lone trainer) through the trainers' own code, batch 8, `--warmup` steps then `--steps` timed
steps; the table gives ms per stack step, per member-step, achieved FLOP/s (training FLOPs as
the trainer counts them, all members) and MFU against a dense matmul peak measured here in
the training precision. Rows stop once `--budget` seconds are spent (the table says so).
Then a WSD share (transformer 8×1, 3 lrs, lengths S and 2S): the 3 trunks as one stack with a
fork at (1 − cooldown)·S, then the 3 branches as one stack from the forks, rows written into a
Parquet store under `--out`, and the store's final rows printed.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repo root: the equisweep package
DATA = HERE / "data"
TASK = {
    "name": "rigid_body",
    "trajectories": 512,
    "val_trajectories": 16,
    "test_trajectories": 64,
    "bodies": [3, 5],
    "vertices": 8,
    "shapes": ["hull", "box", "tetrahedron"],
    "frames": 32,
    "delta": 8,
    "seed": 0,
}
TRAINING = {"batch_size": 8, "schedule": "wsd", "cooldown": 0.2, "warmup": 0.2}
SIZES = {  # the CPU study's (sweeps/cpu-study.yaml), largest first
    "gatr": [
        {"width": 8, "depth": 2},
        {"width": 6, "depth": 2},
        {"width": 4, "depth": 2},
        {"width": 4, "depth": 1},
        {"width": 2, "depth": 1, "scalars": 4},
    ],
    "transformer": [
        {"width": 48, "depth": 3},
        {"width": 32, "depth": 2},
        {"width": 24, "depth": 2},
        {"width": 16, "depth": 1},
        {"width": 8, "depth": 1},
    ],
}
QUICK_SIZES = {
    "gatr": [{"width": 2, "depth": 1, "scalars": 4}],
    "transformer": [{"width": 8, "depth": 1}],
}
HOST_ABSENT = ("ray", "mujoco", "optuna")


def configs(
    family: str,
    size: dict,
    augment: bool,
    k: int,
    steps: int,
    every: int,
    lrs: list[float] | None = None,
    lengths: list[int] | None = None,
) -> list:
    """TrialConfigs of one cell: `k` lrs (or `lrs`) × `lengths` (default [steps])."""
    from equisweep.spec import parse_spec

    lrs = lrs or [1e-3 * 10 ** (i / max(k - 1, 1)) for i in range(k)]
    entry = {"sizes": [size]}
    if family == "transformer":
        entry["augment"] = [augment]
    spec = parse_spec(
        {
            "name": "bench-gpu",
            "task": TASK,
            "families": {family: entry},
            "grid": {
                "steps": lengths or [steps],
                "train_trajectories": [TASK["trajectories"]],
                "seed": [0],
            },
            "search": {"method": "grid", "params": {"lr": {"choice": lrs}}},
            "training": {
                **TRAINING,
                "eval_every": every,
                "checkpoint_every": max(lengths or [steps]),
            },
        }
    )
    return spec.trials()


def matmul_peak(device, dtype) -> float:
    """Dense matmul FLOP/s in `dtype` on `device`: best of 10 products (8192² on a GPU, 512²
    on a CPU)."""
    import torch

    n = 8192 if device.type == "cuda" else 512
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(13):
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(trials: list, device: str, warm: int) -> tuple[float, float]:
    """(seconds per stack step, training FLOPs per step, all members) over the steps after
    `warm`, from the trainers' own rows: a row at `warm` and at the end (evaluation time is
    not in `wall_s`; a stacked member's wall_s is its share of the stack's)."""


    from equisweep.train import iter_trial
    from equisweep.trainer.stack import iter_stack

    cfgs = [t.to_dict() for t in trials]
    if len(cfgs) == 1:
        emits = ((0, e) for e in iter_trial(cfgs[0], device=device, data_dir=DATA))
    else:
        emits = iter_stack(cfgs, device=device, data_dir=DATA)
    at: dict[int, list[dict]] = {}
    for _, emit in emits:  # both trainers enter training.precision's autocast themselves
        if emit.row is not None and emit.row["step"] in (warm, cfgs[0]["steps"]):
            at.setdefault(emit.row["step"], []).append(emit.row)
    first, last = at[warm], at[cfgs[0]["steps"]]
    steps = cfgs[0]["steps"] - warm
    wall = sum(r["wall_s"] for r in last) - sum(r["wall_s"] for r in first)
    flops = sum(r["flops"] for r in last) - sum(r["flops"] for r in first)
    return wall / steps, flops / steps


def table(args, device, peak: float, t_start: float) -> None:
    sizes = QUICK_SIZES if args.quick else SIZES
    ks = [1, 2] if args.quick else [1, 8, 32]
    print(
        "\n| variant | size | K | ms/stack step | ms/member-step | FLOP/s | MFU |\n"
        "|---|---|---|---|---|---|---|",
        flush=True,
    )
    for family, family_sizes in sizes.items():
        for augment in [False, True] if family == "transformer" else [False]:
            for size in family_sizes:
                for k in ks:
                    if time.perf_counter() - t_start > args.budget:
                        print(
                            f"| (budget of {args.budget:.0f} s spent: rows stop here) |", flush=True
                        )
                        return
                    trials = configs(
                        family, size, augment, k, args.warmup + args.steps, args.warmup
                    )
                    step, flops = throughput(trials, args.device, args.warmup)
                    name = family + (" +aug" if augment else "")
                    label = f"{size['width']}x{size['depth']}"
                    print(
                        f"| {name} | {label} | {k} | {1e3 * step:.2f} | "
                        f"{1e3 * step / k:.3f} | {flops / step:.3g} | "
                        f"{100 * flops / step / peak:.2f}% |",
                        flush=True,
                    )


def wsd_share(args, out: Path) -> None:
    """3 lrs × lengths S, 2S: trunks as one stack with forks, branches as one stack."""
    from equisweep.schedule import fork_step
    from equisweep.store import open_store
    from equisweep.store.schema import REPORTED_METRICS, trial_columns
    from equisweep.trainer.stack import iter_stack

    short = 20 if args.quick else 200
    lrs = [2e-3, 5e-3, 1.2e-2]
    trials = configs(
        "transformer",
        {"width": 8, "depth": 1},
        False,
        3,
        2 * short,
        short // 2,
        lrs=lrs,
        lengths=[short, 2 * short],
    )
    trunks = sorted((t for t in trials if t.steps == 2 * short), key=lambda t: t.hparams["lr"])
    branches = sorted((t for t in trials if t.steps == short), key=lambda t: t.hparams["lr"])
    fork = fork_step(short, TRAINING["cooldown"])
    store = open_store(str(out / "store"))
    sweep = "bench-gpu-wsd"
    ckpt = out / "checkpoints"

    def trial_row(t, status: str, **extra) -> dict:
        return {
            **trial_columns(
                t.key,
                t.to_dict(),
                n_params=t.n_params,
                flops_per_step=t.flops_per_step,
                equivariant=t.equivariant,
            ),
            "sweep": sweep,
            "cell_key": t.cell_key,
            "status": status,
            "attempt": 1,
            "node": "bench",
            "error": "",
            **extra,
        }

    def metric(row: dict, t) -> dict:
        return {**{c: row.get(c) for c in REPORTED_METRICS}, "key": t.key, "attempt": 1}

    forks: dict[int, tuple[str, list]] = {}
    with store.writer(sweep) as w:

        def write(group, emits, extra):
            for m, emit in emits:
                t = group[m]
                if emit.fork_step is not None:
                    forks[m] = (emit.checkpoint_dir, emit.fork_rows)
                    continue
                w.add_metrics([metric(emit.row, t)])
                if emit.final:
                    w.add_trial(
                        trial_row(
                            t,
                            emit.row.get("status") or "finished",
                            error=emit.row.get("error") or "",
                            **extra(m),
                        )
                    )

        for t in trunks:
            w.add_trial(trial_row(t, "running", trunk=t.key))
        write(
            trunks,
            iter_stack(
                [t.to_dict() for t in trunks],
                device=args.device,
                data_dir=DATA,
                checkpoint_dirs=[ckpt / f"trunk{m}" for m in range(3)],
                fork_steps=[[fork]] * 3,
            ),
            lambda m: {"trunk": trunks[m].key},
        )
        for m, t in enumerate(branches):
            w.add_trial(trial_row(t, "running", trunk=trunks[m].key, fork_step=fork))
        # A branch's curve starts with its trunk's rows up to the fork (as the driver does).
        for m, t in enumerate(branches):
            w.add_metrics([metric(r, t) for r in forks[m][1]])
        write(
            branches,
            iter_stack(
                [t.to_dict() for t in branches],
                device=args.device,
                data_dir=DATA,
                checkpoint_dirs=[ckpt / f"branch{m}" for m in range(3)],
                restore_from=[forks[m][0] for m in range(3)],
            ),
            lambda m: {"trunk": trunks[m].key, "fork_step": fork},
        )
    final = store.final(sweep).to_pylist()
    print(f"\nWSD share into {out / 'store'}: fork at step {fork}")
    print("| steps | lr | status | val_loss | test_loss ± se | flops |\n|---|---|---|---|---|---|")
    for r in sorted(final, key=lambda r: (r["steps"], json.loads(r["hparams"])["lr"])):
        print(
            f"| {r['steps']} | {json.loads(r['hparams'])['lr']:g} | {r['status']} | "
            f"{r['val_loss']:.4g} | {r['test_loss']:.4g} ± {r['test_loss_se']:.2g} | "
            f"{r['flops']:.3g} |"
        )
    if len(final) != 6 or any(r["status"] != "finished" for r in final):
        raise SystemExit("WSD share: expected 6 finished trials in the store")


def make_data() -> None:
    from equisweep.task import TaskConfig, ensure_dataset

    task = {k: v for k, v in TASK.items() if k != "name"}
    path = ensure_dataset(TaskConfig.from_dict(task), cache_dir=DATA, workers=1, progress=False)
    size = sum(f.stat().st_size for f in path.iterdir())
    print(f"{path}: {size / 2**20:.2f} MiB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument(
        "--precision",
        choices=["bf16", "fp32"],
        default="bf16",
        help="bf16 autocast on CUDA (the trainer's training.precision)",
    )
    ap.add_argument("--quick", action="store_true", help="two small sizes, K 1 and 2")
    ap.add_argument("--steps", type=int, help="timed steps (default 30, quick 3)")
    ap.add_argument("--warmup", type=int, help="untimed steps first (default 10, quick 2)")
    ap.add_argument(
        "--budget",
        type=float,
        default=420.0,
        help="seconds after which no new table row starts (default 420)",
    )
    ap.add_argument("--out", type=Path, help="store folder (default: a temp folder)")
    ap.add_argument("--make-data", action="store_true", help="write bench/gpu/data/ (MuJoCo)")
    args = ap.parse_args(argv)
    if args.make_data:
        make_data()
        return 0
    for name in HOST_ABSENT:
        sys.modules.setdefault(name, None)  # importing one now raises ImportError
    args.steps = args.steps or (3 if args.quick else 30)
    args.warmup = args.warmup or (2 if args.quick else 10)
    if args.precision == "bf16":
        TRAINING["precision"] = "bf16"  # the trainer applies it on CUDA only
    import torch

    device = torch.device(args.device)
    t_start = time.perf_counter()
    dtype = torch.bfloat16 if args.precision == "bf16" and device.type == "cuda" else torch.float32
    peak = matmul_peak(device, dtype)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"device {name}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"dense {str(dtype).removeprefix('torch.')} matmul peak {peak:.3g} FLOP/s",
        flush=True,
    )
    table(args, device, peak, t_start)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        wsd_share(args, copy.copy(out))
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
