"""`equisweep status [NAME] [--trials] [--watch] [--json]`: how is the sweep going?

Per sweep: trials planned / pending / running / retrying / finished / failed / diverged /
interrupted, training FLOPs spent vs planned vs budget, an ETA from the live driver's
measured throughput, and the best trial per variant so far (the `equisweep best` rule).

With `--trials` (and a NAME), the trials in flight follow, one line each (store/live_trials.py).
`--watch` on a sweep that is not in the store yet (just submitted: a cluster takes tens of
seconds to start its driver) waits up to `--wait` seconds for it (store/appear.py).

A trial is `interrupted` when its latest row says "running" but the driver that runs it is
gone: its heartbeat (store/heartbeat.py) ended, went stale, or names a dead local pid.
"""

from __future__ import annotations

import sys
import time

from equisweep.store.cli_common import add_store_argument, check_sweep, open_for_reading

COUNTS = ("planned", "pending", "running", "retrying", "finished", "failed", "diverged",
          "interrupted",
          "skipped_budget")


def add_arguments(parser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", help="sweep name (default: all)")
    add_store_argument(parser)
    parser.add_argument("--watch", action="store_true",
                        help="refresh in place until no driver of the shown sweeps is alive "
                             "(Ctrl-C to stop earlier)")
    parser.add_argument("--interval", type=float, default=5.0, metavar="SECONDS",
                        help="seconds between refreshes with --watch (default: 5)")
    parser.add_argument("--json", action="store_true",
                        help="print the status as JSON (one object per sweep)")
    parser.add_argument("--trials", action="store_true",
                        help="also list the trials in flight (node, attempt, step, latest "
                             "val loss); needs NAME")
    parser.add_argument("--wait", type=float, default=120.0, metavar="SECONDS",
                        help="with --watch: how long to wait for a sweep that is not in the "
                             "store yet (default: 120)")


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


def _number(meta, key) -> float | None:
    v = meta.get(key) if isinstance(meta, dict) else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def sweep_status(store, name: str | None = None, now: float | None = None) -> list[dict]:
    """One dict per sweep (see the module docstring); JSON-ready."""
    import pyarrow.compute as pc

    from equisweep.store.best import best_trials
    from equisweep.store.heartbeat import driver_alive, read_beat

    now = time.time() if now is None else now
    spent = store.flops_spent(name)
    out = []
    for sweep in [name] if name is not None else store.sweeps():
        meta = store.read_sweep_meta(sweep)
        beat = read_beat(store, sweep)
        alive = driver_alive(beat, now)
        trials = store.trials(sweep)
        status = pc.value_counts(trials.column("status")).to_pylist() if trials.num_rows else []
        c = {d["values"]: d["counts"] for d in status}
        running, retrying = c.get("running", 0), c.get("retrying", 0)
        row = {"sweep": sweep, "trials": trials.num_rows,
               "finished": c.get("finished", 0), "failed": c.get("failed", 0),
               "diverged": c.get("diverged", 0), "skipped_budget": c.get("skipped_budget", 0),
               "running": running if alive is not False else 0,
               # an attempt crashed and Tune will start the next one (maybe waiting for a CPU)
               "retrying": retrying if alive is not False else 0,
               "interrupted": running + retrying if alive is False else 0}
        # The driver writes its plan both into the sweep's metadata and into every beat.
        planned = _number(beat, "planned_trials") or _number(meta, "planned_trials")
        row["planned"] = None if planned is None else int(planned)
        started = sum(row[k] for k in ("running", "retrying", "finished", "failed",
                                       "diverged", "interrupted"))
        row["pending"] = None if planned is None else max(0, int(planned) - started)
        row["flops"] = float(spent.get(sweep, 0.0))
        row["planned_flops"] = _number(beat, "planned_flops") or _number(meta, "planned_flops")
        row["budget"] = budget_flops(meta)
        row["driver"] = None if alive is None else (
            "alive" if alive else ("ended" if beat.get("state") == "ended" else "gone"))
        row["last_beat_s"] = None if not beat else max(0.0, now - float(beat.get("beat_at", 0)))
        row["eta_s"] = _eta(beat, alive, row)
        best = best_trials(store.final(sweep), per="variant") if trials.num_rows else None
        row["best"] = [] if best is None else [
            {"variant": _variant(r), "key": r["key"], "n_params": r["n_params"],
             "steps": r["steps"], "val_loss": _finite(r.get("val_loss")),
             "test_loss": _finite(r.get("test_loss")),
             "test_loss_se": _finite(r.get("test_loss_se")), "skill": _finite(r.get("skill"))}
            for r in best.to_pylist()]
        out.append(row)
    return out


def _finite(v):
    import math

    return v if isinstance(v, float) and math.isfinite(v) else None


def _variant(r: dict) -> str:
    return f"{r['family']}+aug" if r.get("augment") else str(r["family"])


def _eta(beat, alive, row) -> float | None:
    """Seconds left: the driver's own estimate (each variant's FLOPs left at that variant's
    measured pace, sweep/progress.py), less the time since its beat; from a driver that
    does not send one, FLOPs still planned over the FLOP rate it has achieved so far."""
    if not alive or not beat:
        return None
    if "eta_s" in beat:  # None: some variant with work left has no measured pace yet
        if not isinstance(beat["eta_s"], (int, float)) or isinstance(beat["eta_s"], bool):
            return None
        since = max(0.0, time.time() - float(beat.get("beat_at", time.time())))
        return max(0.0, float(beat["eta_s"]) - since)
    if row["planned_flops"] is None:
        return None
    elapsed = float(beat.get("beat_at", 0)) - float(beat.get("started_at", 0))
    done = float(beat.get("run_flops") or 0.0)
    if elapsed <= 0 or done <= 0:
        return None
    return max(0.0, row["planned_flops"] - row["flops"]) / (done / elapsed)


def duration(s: float | None) -> str:
    if s is None:
        return ""
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def format_status(rows: list[dict]) -> str:
    import pyarrow as pa

    from equisweep.store.cli_common import format_table

    def flops(v):
        return "" if v is None else f"{v:.3g}"

    def used(r):
        if not r["budget"]:
            return "no budget" if r["budget"] is None else ""
        return f"{100.0 * r['flops'] / r['budget']:.1f}%"

    def ints(key):
        return pa.array([r[key] for r in rows], pa.int64())

    table = pa.table({
        "SWEEP": [r["sweep"] for r in rows],
        **{k.upper().replace("SKIPPED_BUDGET", "SKIPPED"): ints(k) for k in COUNTS},
        "FLOPS": [flops(r["flops"]) for r in rows],
        "PLANNED_FLOPS": [flops(r["planned_flops"]) for r in rows],
        "BUDGET": [flops(r["budget"]) for r in rows],
        "USED": [used(r) for r in rows],
        "ETA": [duration(r["eta_s"]) for r in rows],
        "DRIVER": [r["driver"] or "" for r in rows],
    })
    lines = [format_table(table, right={"FLOPS", "PLANNED_FLOPS", "BUDGET", "USED", "ETA"})]
    best = [(r["sweep"], b) for r in rows for b in r["best"]]
    if best:
        lines.append("")
        lines.append("best so far per variant (lowest final val_loss; equisweep best NAME "
                     "--per variant):")
        bt = pa.table({
            "SWEEP": [s for s, _ in best], "VARIANT": [b["variant"] for _, b in best],
            "KEY": [b["key"] for _, b in best],
            "N_PARAMS": pa.array([b["n_params"] for _, b in best], pa.int64()),
            "STEPS": pa.array([b["steps"] for _, b in best], pa.int64()),
            "VAL_LOSS": pa.array([b["val_loss"] for _, b in best], pa.float64()),
            "TEST_LOSS": pa.array([b["test_loss"] for _, b in best], pa.float64()),
            "TEST_LOSS_SE": pa.array([b["test_loss_se"] for _, b in best], pa.float64()),
            # 1 − test_loss / constant-velocity test loss on the same windows (Store.final).
            "SKILL": pa.array([b["skill"] for _, b in best], pa.float64()),
        })
        lines.append(format_table(bt))
    return "\n".join(lines)


def _render(store, args) -> tuple[str, list[dict]]:
    import json

    from equisweep.store.live_trials import format_live, live_trials

    rows = sweep_status(store, args.name)
    if not rows:
        return ("[]" if args.json else f"results store {store.uri} has no sweeps yet"), rows
    if args.trials:
        for r in rows:
            r["in_flight"] = live_trials(store, r["sweep"], {"alive": True, "gone": False,
                                                             "ended": False}.get(r["driver"]))
    if args.json:
        # --watch --json: one line per refresh (JSON Lines), so a reader can follow it.
        return json.dumps(rows, indent=None if args.watch else 1, allow_nan=False,
                          default=str), rows
    text = format_status(rows)
    if args.trials:
        live = rows[0]["in_flight"]
        text += "\n\n" + (f"trials in flight ({len(live)}):\n" + format_live(live) if live
                           else "no trial in flight")
    return text, rows


def run(args) -> int:
    from equisweep.errors import UserError

    if not args.interval > 0:
        raise UserError(f"--interval must be > 0 seconds, got {args.interval:g}")
    if not args.wait >= 0:
        raise UserError(f"--wait must be ≥ 0 seconds, got {args.wait:g}")
    if args.trials and args.name is None:
        raise UserError("--trials needs a sweep NAME (equisweep status NAME --trials)")
    if not args.watch:
        store = open_for_reading(args)
        check_sweep(store, args.name)
        print(_render(store, args)[0])
        return 0
    from equisweep.store.appear import starting, wait_for_sweep
    from equisweep.store.naming import store_location

    say = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else print
    store = wait_for_sweep(store_location(args.store), args.name, args.wait, say=say)
    deadline = time.monotonic() + args.wait
    tty = sys.stdout.isatty()
    try:
        while True:
            text, rows = _render(store, args)
            stamp = time.strftime("%Y-%m-%d %H:%M:%S")
            if tty:
                sys.stdout.write("\x1b[H\x1b[2J")  # cursor home, clear: refresh in place
            sys.stdout.write(text + "\n" if args.json else f"{text}\n(as of {stamp})\n")
            sys.stdout.flush()
            if not any(r["driver"] == "alive" for r in rows) and not (
                    args.name is not None and rows and starting(
                        rows[0]["driver"] is not None, rows[0]["trials"], deadline)):
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
