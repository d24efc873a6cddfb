"""End to end under `equisweep run`: a sweep of the CPU study's shape, this trainer against
the trainer of an older commit (default accb14d, issue 18's baseline), both in one invocation.

    python bench/train/bench_study.py [--runs 2] [--stack auto] [--baseline accb14d]
    python bench/train/bench_study.py --quick        # minutes: tiny task, sizes and steps

The sweep: the second study design's compute axis, frozen here (STUDY_SIZES: 5 GATr, 5
transformer × augment off/on = 15 variants) × its 3 learning rates × 2,000 steps × one seed,
batch 8, with sweeps/cpu-study.yaml's task and training settings, one sweep per family. The
shape is fixed in this file so that the measurement stays comparable while the study's own
files change. The baseline side is a git worktree of `--baseline` made here in a temp
folder (removed at the end); each side runs its own code (PYTHONPATH), on the same dataset
(generated once, before any timing). Runs alternate, new then baseline, `--runs` times, each
into a fresh store, with the load average (1 min) before and after every run beside it.

Prints the wall of each run, the median total and per-family wall ratio (baseline / new), and
per size (from each side's last store): ms per member-step (a trial's training wall per step;
a stacked member's wall is its share of the stack), achieved FLOP/s (training FLOPs as the
trainer counts them / training wall) and its % of a single-thread matmul peak measured here.

`--stack` (default auto) sets `training.stack` in the new side's sweeps; where this code's
spec does not know the key, the script says so and runs the new side without it.
Needs a quiet machine for numbers worth quoting: the full run takes hours.
"""

from __future__ import annotations

import argparse
import copy
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

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "sweeps" / "cpu-study.yaml"
RUN = "import sys; from equisweep.cli import main; sys.exit(main())"
QUICK_TASK = {
    "trajectories": 32,
    "val_trajectories": 8,
    "test_trajectories": 8,
    "frames": 20,
    "bodies": [3, 4],
}
STUDY_SIZES = {
    "gatr": [{"width": w, "depth": d} for w, d in ((8, 2), (6, 2), (4, 2), (4, 1))]
    + [{"width": 2, "depth": 1, "scalars": 4}],
    "transformer": [
        {"width": w, "depth": d} for w, d in ((48, 3), (32, 2), (24, 2), (16, 1), (8, 1))
    ],
}
STUDY_RATES = [3.0e-3, 6.0e-3, 1.2e-2]
QUICK_SIZES = {
    "gatr": [{"width": 2, "depth": 1, "scalars": 4}],
    "transformer": [{"width": 8, "depth": 1}],
}


def sweeps(quick: bool, steps: int | None) -> dict[str, dict]:
    """One sweep document per family of the study, at one length."""
    study = yaml.safe_load(STUDY.read_text())
    steps = steps or (20 if quick else 2000)
    out = {}
    for family, sizes in STUDY_SIZES.items():
        doc = copy.deepcopy(study)
        doc.pop("description", None)
        entry = {"sizes": sizes}
        if family == "transformer":
            entry["augment"] = [False, True]
        doc["search"] = {"method": "grid", "params": {"lr": {"choice": STUDY_RATES}}}
        doc["grid"]["seed"] = [0]
        if quick:
            doc["task"].update(QUICK_TASK)
            entry["sizes"] = QUICK_SIZES[family]
            entry.pop("augment", None)
            doc["search"]["params"]["lr"] = {"choice": [3.0e-3, 1.2e-2]}
        doc["name"] = f"bench-study-{family}"
        doc["families"] = {family: entry}
        doc["grid"].update(steps=[steps], train_trajectories=[doc["task"]["trajectories"]])
        doc["training"].update(
            eval_every=min(steps, doc["training"]["eval_every"]),
            checkpoint_every=min(steps, doc["training"]["checkpoint_every"]),
        )
        doc.pop("store", None)
        out[family] = doc
    return out


def python(code_root: Path, *args: str, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(code_root)}
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=code_root, text=True, capture_output=True, **kw
    )


def with_stack(docs: dict[str, dict], stack: str, code_root: Path, tmp: Path) -> dict[str, dict]:
    """`docs` with training.stack set, if this code's spec accepts the key (probed with
    `equisweep validate`); else unchanged, and said."""
    if stack == "none":
        return docs
    value = int(stack) if stack.isdigit() else stack
    out = copy.deepcopy(docs)
    for doc in out.values():
        doc["training"]["stack"] = value
    path = tmp / "stack-probe.yaml"
    path.write_text(yaml.safe_dump(next(iter(out.values()))))
    res = python(code_root, "-c", RUN, "validate", str(path))
    if res.returncode == 0:
        print(f"new side: training.stack {value}", flush=True)
        return out
    print(
        f"note: this trainer's spec rejects training.stack ({_last_line(res)}); "
        "the new side runs without it",
        flush=True,
    )
    return docs


def _last_line(res: subprocess.CompletedProcess) -> str:
    lines = (res.stderr or res.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit {res.returncode}"


def load() -> float:
    return os.getloadavg()[0]


def run_sweep(code_root: Path, doc: dict, store: Path, data_dir: Path | None, tmp: Path) -> float:
    """Wall seconds of one `equisweep run` of `doc` into `store` with the code at
    `code_root`; a failed run stops the benchmark with its last line."""
    path = tmp / f"{doc['name']}.yaml"
    path.write_text(yaml.safe_dump(doc))
    args = ["-c", RUN, "run", str(path), "--store", str(store), "--no-progress"]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    t0 = time.perf_counter()
    res = python(code_root, *args)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{code_root}: equisweep run {doc['name']} failed: {_last_line(res)}")
    return wall


def make_dataset(code_root: Path, doc: dict, data_dir: Path | None) -> None:
    """Generate the sweep's dataset before any run is timed (both sides share the cache)."""
    code = (
        "import sys, yaml; from equisweep.task import TaskConfig, ensure_dataset; "
        "t = yaml.safe_load(open(sys.argv[1]))['task']; t.pop('name', None); "
        "ensure_dataset(TaskConfig.from_dict(t), cache_dir=sys.argv[2] or None, "
        "progress=False)"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(doc, f)
    res = python(code_root, "-c", code, f.name, str(data_dir or ""))
    os.unlink(f.name)
    if res.returncode != 0:
        raise SystemExit(f"dataset generation failed: {_last_line(res)}")


def matmul_peak(n: int = 512, reps: int = 20) -> float:
    """Single-thread float32 matmul FLOP/s: the best of several timed n×n products."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    a, b = torch.randn(n, n), torch.randn(n, n)
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    torch.set_num_threads(threads)
    return 2 * n**3 / best


def size_table(store: Path, sweep: str, peak: float) -> list[dict]:
    """Per (family, augment, size): mean ms per member-step and FLOP/s over its trials."""
    from equisweep.store import open_store

    final = open_store(str(store)).final(sweep).to_pylist()
    cells: dict[tuple, list[dict]] = {}
    for r in final:
        size = json.loads(r["size"])
        label = (
            r["family"] + (" +aug" if r.get("augment") else ""),
            f"{size['width']}x{size['depth']}"
            + (
                f" s{size['scalars']}"
                if size.get("scalars", 4 * size["width"]) != 4 * size["width"]
                else ""
            ),
        )
        cells.setdefault(label, []).append(r)
    rows = []
    for (variant, size), trials in sorted(cells.items(), key=lambda kv: str(kv[0])):
        wall = sum(float(t["wall_s"]) for t in trials)
        steps = sum(int(t["step"]) for t in trials)
        flops = sum(float(t["flops"]) for t in trials)
        rows.append(
            {
                "variant": variant,
                "size": size,
                "trials": len(trials),
                "ms_per_step": 1e3 * wall / max(steps, 1),
                "flops_per_s": flops / max(wall, 1e-12),
                "peak_pct": 100 * flops / max(wall, 1e-12) / peak,
            }
        )
    return rows


def worktree(rev: str, where: Path) -> Path:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(where), rev],
        check=True,
        capture_output=True,
        text=True,
    )
    return where


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default="accb14d", help="git revision of the old trainer")
    ap.add_argument("--runs", type=int, default=2, help="alternating pairs (default 2)")
    ap.add_argument(
        "--stack",
        default="auto",
        help="training.stack of the new side: auto, off, N, or none (key unset)",
    )
    ap.add_argument("--quick", action="store_true", help="tiny task, sizes and steps")
    ap.add_argument("--steps", type=int, help="steps per trial (default 2000, quick 20)")
    ap.add_argument("--families", help="comma-separated subset of the study's families")
    ap.add_argument("--data-dir", type=Path, help="dataset cache (default: equisweep's)")
    ap.add_argument("--json", type=Path, help="also write every figure here")
    args = ap.parse_args(argv)
    docs = sweeps(args.quick, args.steps)
    if args.families:
        docs = {f: docs[f] for f in args.families.split(",")}
    tmp = Path(tempfile.mkdtemp(prefix="bench-study-"))
    base = None
    try:
        base = worktree(args.baseline, tmp / "baseline")
        sides = {"new": ROOT, "baseline": base}
        new_docs = with_stack(docs, args.stack, ROOT, tmp)
        make_dataset(ROOT, next(iter(docs.values())), args.data_dir)
        walls: dict[str, dict[str, list[float]]] = {s: {f: [] for f in docs} for s in sides}
        stores: dict[str, Path] = {}
        for r in range(args.runs):
            for side, code in sides.items():
                store = tmp / f"store-{side}-{r}"
                for family in docs:
                    doc = new_docs[family] if side == "new" else docs[family]
                    before = load()
                    wall = run_sweep(code, doc, store, args.data_dir, tmp)
                    walls[side][family].append(wall)
                    print(
                        f"run {r + 1} {side:<8} {family:<12} {wall:8.1f} s  "
                        f"(load {before:.2f} -> {load():.2f})",
                        flush=True,
                    )
                stores[side] = store
        report(docs, walls, stores, args.json)
    finally:
        if base is not None:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                capture_output=True,
            )
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(docs: dict, walls: dict, stores: dict, json_path: Path | None) -> None:
    med = {s: {f: statistics.median(w) for f, w in per.items()} for s, per in walls.items()}
    total = {s: sum(per.values()) for s, per in med.items()}
    print(
        f"\nmedian wall, baseline / new: total {total['baseline']:.1f} / {total['new']:.1f} s"
        f" = {total['baseline'] / total['new']:.2f}x"
    )
    for family in docs:
        b, n = med["baseline"][family], med["new"][family]
        print(f"  {family:<12} {b:8.1f} / {n:8.1f} s = {b / n:.2f}x")
    peak = matmul_peak()
    print(f"\nsingle-thread float32 matmul peak (512x512, best of 20): {peak:.3g} FLOP/s")
    tables = {}
    for side, store in stores.items():
        rows = [row for f, doc in docs.items() for row in size_table(store, doc["name"], peak)]
        tables[side] = rows
    print(
        "\n| variant | size | trials | ms/member-step new | baseline | FLOP/s new | baseline "
        "| % peak new | baseline |\n|---|---|---|---|---|---|---|---|---|"
    )
    old = {(r["variant"], r["size"]): r for r in tables["baseline"]}
    for r in tables["new"]:
        o = old.get((r["variant"], r["size"]), {})
        print(
            f"| {r['variant']} | {r['size']} | {r['trials']} | {r['ms_per_step']:.2f} | "
            f"{o.get('ms_per_step', float('nan')):.2f} | {r['flops_per_s']:.3g} | "
            f"{o.get('flops_per_s', float('nan')):.3g} | {r['peak_pct']:.1f} | "
            f"{o.get('peak_pct', float('nan')):.1f} |"
        )
    if json_path is not None:
        json_path.write_text(
            json.dumps(
                {"walls": walls, "median": med, "total": total, "peak": peak, "sizes": tables},
                indent=1,
            )
        )


if __name__ == "__main__":
    sys.exit(main())
