"""`equisweep validate SWEEP.yaml`: check a sweep file and show what it would run.

Prints one row per grid cell (family, size, N, steps, train trajectories, augment, seed,
FLOPs per trial, trials), then the trial count and the FLOP total, the budget cut when
the sweep has a budget, and how the trials will be stacked (`training.stack`). `--json`
prints the same as one JSON object. Nothing is written and Ray is not started. Exit 0
when valid; 2 with every problem found otherwise.
"""

from __future__ import annotations

import argparse
import json

from equisweep.store.naming import add_store_argument, store_location


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sweep", metavar="SWEEP.yaml", help="the sweep file to check")
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead")
    parser.add_argument("--rate", type=float, default=None, metavar="FLOP/S",
                        help="training FLOPs per second one trial slot sustains (measure it: "
                             "bench/gpu, or a first trial's stored flops_per_s): adds the "
                             "device-hours and wall time the spend takes at that rate")
    add_store_argument(parser)  # shown: where `run` would write


def run(args: argparse.Namespace) -> int:
    from equisweep.errors import UserError
    from equisweep.spec import load_spec

    if args.rate is not None and not (args.rate > 0 and args.rate < float("inf")):
        raise UserError(f"--rate must be a positive number of FLOP/s, got {args.rate:g}")
    spec = load_spec(args.sweep)
    summary = summarize(spec, store=store_location(args.store, spec.store), rate=args.rate)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(render(summary))
    return 0


def summarize(spec, store: str | None = None, rate: float | None = None) -> dict:
    """Plain-data picture of a sweep: cells, trial counts, FLOPs and the budget cut.

    `total_flops` is the compute of the points (each trial as a standalone run: what the fits
    see); `spend_flops` is what training them uses (under WSD, shared trunk steps counted
    once). The budget caps the spend.
    """
    from equisweep.spec import trunks

    per_cell = spec.trials_per_cell()
    members = trunks.members(spec)
    n_trials = len(members)
    total = sum(m.total_flops for m in members)
    if spec.search.method == "optuna":
        counts = {c.key: per_cell for c in spec.cells()}
    else:
        counts: dict[str, int] = {}
        for m in members:
            counts[m.obj.cell_key] = counts.get(m.obj.cell_key, 0) + 1
    cost = trunks.planned_spend(spec)
    budget = None
    if spec.budget_flops is not None:
        budget = {
            "flops": spec.budget_flops,
            "kept_trials": cost["kept_trials"],
            "skipped_trials": n_trials - cost["kept_trials"],
            "kept_flops": cost["kept_points_flops"],
            "kept_spend_flops": cost["kept_spend_flops"],
        }
    from equisweep.sweep.plan import fresh_plan
    from equisweep.sweep.stacking import describe

    stacking = describe(spec, fresh_plan(spec).slots)  # the grouping `run` uses
    cells = []
    for c in spec.cells():
        row = c.to_dict()
        row["trials"] = counts.get(c.key, 0)
        cells.append(row)
    return {
        "name": spec.name,
        "source": spec.source,
        "search": spec.search.method,
        "params": spec.search_space(),
        "n_cells": len(cells),
        "n_trials": n_trials,
        "total_flops": total,
        "spend_flops": cost["spend_flops"],
        "schedule": spec.training.get("schedule"),
        "budget": budget,
        "resources": spec.resources,
        "max_concurrent": spec.max_concurrent,
        "store": store or spec.store,
        "stacking": stacking,
        "hours": _hours(spec, cost, budget, rate),
        "cells": cells,
    }


def _hours(spec, cost: dict, budget: dict | None, rate: float | None) -> dict | None:
    """Time the spend takes at `rate` FLOP/s per trial slot: slot-hours, GPU- and CPU-hours
    (slot-hours times the slot's resources), and the wall time at `max_concurrent` slots
    busy (a lower bound: the longest trunk and the tail can take longer)."""
    if rate is None:
        return None
    spend = budget["kept_spend_flops"] if budget else cost["spend_flops"]
    slot_h = spend / rate / 3600.0
    res = spec.resources
    return {"rate": rate, "slot_hours": slot_h, "gpu_hours": slot_h * float(res.get("gpu", 0)),
            "cpu_hours": slot_h * float(res.get("cpu", 1)),
            "wall_hours_at_least": slot_h / max(1, spec.max_concurrent)}


def _stacking_text(st: dict) -> str:
    if st["mode"] == "off":
        return "stacking off: every trial trains alone"
    kinds = ", ".join(f"K={k}: {n}" for k, n in st["stacks"].items())
    text = (f"stacking {st['mode']}: {st['trials']} trials train as {st['tune_trials']} "
            f"stacks of K trials each ({kinds})")
    if st["wsd_trunks_only"]:
        text += "; under schedule wsd only trunks stack (branches start alone from their forks)"
    return text


def _size_text(size: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in size.items())


def render(summary: dict) -> str:
    head = (
        "family",
        "size",
        "N",
        "steps",
        "train_traj",
        "augment",
        "seed",
        "FLOPs/trial",
        "trials",
    )
    rows = [
        (
            c["family"],
            _size_text(c["size"]),
            f"{c['n_params']:,}",
            str(c["steps"]),
            str(c["train_trajectories"]),
            "yes" if c["augment"] else "no",
            str(c["seed"]),
            f"{c['flops']:.3e}",
            str(c["trials"]),
        )
        for c in summary["cells"]
    ]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
    numeric = {2, 3, 4, 6, 7, 8}

    def line(cols):
        return "  ".join(
            col.rjust(w) if i in numeric else col.ljust(w)
            for i, (col, w) in enumerate(zip(cols, widths))
        ).rstrip()

    out = [f"sweep {summary['name']} ({summary['source']}): search {summary['search']}"]
    out += [line(head), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    out.append(
        f"{summary['n_cells']} cells, {summary['n_trials']} trials, "
        f"{summary['total_flops']:.3e} training FLOPs in total (the points, as the fits see them)"
    )
    if summary["schedule"] == "wsd":
        ratio = summary["spend_flops"] / summary["total_flops"] if summary["total_flops"] else 1
        out.append(
            f"schedule wsd: training spends {summary['spend_flops']:.3e} FLOPs "
            f"({ratio:.2f}x the points; shared trunk steps counted once)"
        )
    b = summary["budget"]
    if b is not None:
        spend = (f", spending {b['kept_spend_flops']:.3e}"
                 if summary["schedule"] == "wsd" else "")
        out.append(
            f"budget {b['flops']:.3e} FLOPs: runs {b['kept_trials']} trials "
            f"({b['kept_flops']:.3e} FLOPs of points{spend}), skips {b['skipped_trials']}"
        )
    out.append(_stacking_text(summary["stacking"]))
    hours = summary.get("hours")
    if hours:
        device = (f"{hours['gpu_hours']:.3g} GPU-hours" if hours["gpu_hours"]
                  else f"{hours['cpu_hours']:.3g} CPU-hours")
        out.append(f"at {hours['rate']:.3g} FLOP/s per trial slot (--rate, as given): "
                   f"{hours['slot_hours']:.3g} slot-hours = {device}; at least "
                   f"{hours['wall_hours_at_least']:.3g} h of wall with "
                   f"{summary['max_concurrent']} at once")
    res = summary["resources"]
    out.append(
        f"per trial: cpu {res['cpu']:g}, gpu {res['gpu']:g}; at most "
        f"{summary['max_concurrent']} at once; store {summary['store']}"
    )
    return "\n".join(out)
