"""`equisweep status`: per sweep, trials by status and FLOPs spent against the budget."""

from __future__ import annotations

from equisweep.store.cli_common import add_store_argument, check_sweep, open_for_reading

STATUS_COLUMNS = ("finished", "running", "failed", "diverged", "skipped_budget")


def add_arguments(parser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", help="sweep name (default: all)")
    add_store_argument(parser)


def budget_flops(meta: dict | None) -> float | None:
    """The FLOP budget from sweep metadata: `budget_flops: X`, or `budget: {flops: X}` (or a
    bare number) at the top level or inside the stored `spec`."""
    if not isinstance(meta, dict):
        return None
    flat = meta.get("budget_flops")  # what the driver writes
    if isinstance(flat, (int, float)) and not isinstance(flat, bool):
        return float(flat)
    for holder in (meta, meta.get("spec")):
        if not isinstance(holder, dict):
            continue
        budget = holder.get("budget")
        if isinstance(budget, dict):
            budget = budget.get("flops")
        if isinstance(budget, (int, float)) and not isinstance(budget, bool):
            return float(budget)
    return None


def sweep_status(store, name: str | None = None) -> list[dict]:
    """One dict per sweep: trial counts by status, FLOPs spent, budget (None if unset).

    FLOPs spent = sum over trials of the largest cumulative `flops` any of its rows reached.
    """
    trials = store.trials(name)
    counts: dict[str, dict[str, int]] = {}
    if trials.num_rows:
        per = trials.group_by(["sweep", "status"]).aggregate([("key", "count")])
        for row in per.to_pylist():
            counts.setdefault(row["sweep"], {})[row["status"]] = row["key_count"]
    spent = store.flops_spent(name)
    names = [name] if name is not None else store.sweeps()
    out = []
    for sweep in names:
        c = counts.get(sweep, {})
        out.append({
            "sweep": sweep,
            "trials": sum(c.values()),
            **{s: c.get(s, 0) for s in STATUS_COLUMNS},
            "flops": float(spent.get(sweep, 0.0)),
            "budget": budget_flops(store.read_sweep_meta(sweep)),
        })
    return out


def format_status(rows: list[dict]) -> str:
    import pyarrow as pa

    from equisweep.store.cli_common import format_table

    def flops(v):
        return "" if v is None else f"{v:.3g}"

    def used(r):
        if not r["budget"]:
            return "no budget" if r["budget"] is None else ""
        return f"{100.0 * r['flops'] / r['budget']:.1f}%"

    table = pa.table({
        "SWEEP": [r["sweep"] for r in rows],
        "TRIALS": pa.array([r["trials"] for r in rows], pa.int64()),
        **{s.upper().replace("SKIPPED_BUDGET", "SKIPPED"): pa.array([r[s] for r in rows],
                                                                     pa.int64())
           for s in STATUS_COLUMNS},
        "FLOPS": [flops(r["flops"]) for r in rows],
        "BUDGET": [flops(r["budget"]) for r in rows],
        "USED": [used(r) for r in rows],
    })
    return format_table(table, right={"FLOPS", "BUDGET", "USED"})


def run(args) -> int:
    store = open_for_reading(args)
    check_sweep(store, args.name)
    rows = sweep_status(store, args.name)
    if not rows:
        print(f"results store {store.uri} has no sweeps yet")
        return 0
    print(format_status(rows))
    return 0
