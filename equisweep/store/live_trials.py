"""The trials a sweep has in flight, read from the store: `equisweep status NAME --trials`.

Like Tune's trial table, but from the store rather than the driver's memory, so it works from
any machine that can read the store (a laptop watching a cluster's bucket): per trial whose
latest trial row says `running` (or `retrying`), its node, attempt, how far it got (the
largest step any metric row reached, of the steps planned), its latest validation loss ± SE,
and how long ago the attempt started. The metric rows it reads are those the driver has
flushed (every few seconds while a sweep runs), so a step shown lags the trainer by that.

When the sweep's driver is gone, the same trials are `interrupted`, not running: `state`
says which (the rule of `status`, see store/cli_status.py).
"""

from __future__ import annotations

from datetime import datetime, timezone

from equisweep.store.cli_status import _finite, duration


def live_trials(store, sweep: str, alive: bool | None, now: datetime | None = None) -> list[dict]:
    """One dict per trial in flight (latest trial row `running`, or `retrying`: its last
    attempt crashed and the next waits to start), longest-running first."""
    import pyarrow.compute as pc

    trials = store.trials(sweep)
    if not trials.num_rows:
        return []
    running = trials.filter(pc.field("status").isin(["running", "retrying"]))
    if not running.num_rows:
        return []
    keys = running.column("key").to_pylist()
    metrics = store.metrics(sweep, where=pc.field("key").isin(keys))
    progress = _latest(metrics)
    now = now or datetime.now(timezone.utc)
    out = []
    for t in running.to_pylist():
        step, val, se = progress.get(t["key"], (None, None, None))
        started = t.get("started_at")
        if started is not None and started.tzinfo is None:
            started = started.replace(tzinfo=timezone.utc)
        out.append({
            "key": t["key"], "state": t["status"] if alive is not False else "interrupted",
            "family": t.get("family"),
            "size": "x".join(str(t[c]) for c in ("size_width", "size_depth")
                             if t.get(c) is not None) or t.get("size"),
            "train_trajectories": t.get("train_trajectories"),
            "augment": t.get("augment"), "lr": _finite(t.get("hp_lr")),
            "seed": t.get("seed"), "node": t.get("node"), "attempt": t.get("attempt"),
            "step": step, "steps": t.get("steps"), "val_loss": val, "val_loss_se": se,
            "running_s": None if started is None else max(0.0, (now - started).total_seconds()),
        })
    out.sort(key=lambda r: (-(r["running_s"] or 0.0), r["key"]))
    return out


def _latest(metrics) -> dict[str, tuple]:
    """key -> (largest step, val_loss and its SE at the largest step that has one)."""
    out: dict[str, list] = {}
    cols = metrics.select(["key", "step", "val_loss", "val_loss_se"]).to_pydict()
    # Rows come sorted by (key, step): the last one seen per key wins.
    for key, step, val, se in zip(cols["key"], cols["step"], cols["val_loss"],
                                  cols["val_loss_se"]):
        cur = out.setdefault(key, [None, None, None])
        cur[0] = step
        if _finite(val) is not None:
            cur[1], cur[2] = val, _finite(se)
    return {k: tuple(v) for k, v in out.items()}


def format_live(rows: list[dict]) -> str:
    """The `--trials` table: one line per trial in flight."""
    import pyarrow as pa

    from equisweep.store.cli_common import format_table

    def label(r):
        variant = f"{r['family']}+aug" if r["augment"] else str(r["family"])
        data = "" if r["train_trajectories"] is None else f" d{r['train_trajectories']}"
        return f"{variant} {r['size']}{data}"

    def loss(r):
        if r["val_loss"] is None:
            return ""
        se = "" if r["val_loss_se"] is None else f" ± {r['val_loss_se']:.2g}"
        return f"{r['val_loss']:.4g}{se}"

    def step(r):
        return f"{r['step'] if r['step'] is not None else 0}/{r['steps'] or '?'}"

    table = pa.table({
        "TRIAL": [label(r) for r in rows], "LR": [_lr(r["lr"]) for r in rows],
        "SEED": pa.array([r["seed"] for r in rows], pa.int64()),
        "STATE": [r["state"] for r in rows], "NODE": [r["node"] or "" for r in rows],
        "ATTEMPT": pa.array([r["attempt"] for r in rows], pa.int64()),
        "STEP": [step(r) for r in rows], "VAL_LOSS": [loss(r) for r in rows],
        "FOR": [duration(r["running_s"]) for r in rows], "KEY": [r["key"] for r in rows],
    })
    return format_table(table, right={"STEP", "VAL_LOSS", "FOR", "LR"})


def _lr(v) -> str:
    return "" if v is None else f"{v:.3g}"
