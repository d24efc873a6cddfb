"""What a run left undone, checked against the store rather than against Tune's word.

A run (first submission, resubmission or resume) ends with every trial it started, and
every trial its plan fixed in advance (grid and random search), in a terminal state in the
store: finished, failed or diverged. Whatever is not is named, and the command exits
non-zero, so a sweep is never reported done while a planned trial is missing.

Attempts continue across runs: a trial interrupted in one run and continued in the next
writes its rows as a later attempt, so the store's "highest attempt wins" rule picks the
continuation.
"""

from __future__ import annotations

TERMINAL = frozenset({"finished", "failed", "diverged"})


def held(store, sweep: str) -> tuple[dict[str, int], dict[str, int]]:
    """Per key, what the store holds of a sweep, in one read of its tables: the highest
    attempt (rows of trials and metrics) and the largest metric step.

    The step bounds which earlier checkpoint a rebuilt run may continue a trial from
    (`prior_checkpoints.fetch_latest`): a driver killed after a checkpoint reached Tune's
    folder but before that step's row reached the store leaves a checkpoint ahead of the
    store, and continuing from it would lose the row. Rows are stored in step order."""
    if sweep not in store.sweeps():
        return {}, {}
    tops: dict[str, int] = {}
    steps: dict[str, int] = {}
    metrics = store.metrics(sweep=sweep)
    for table in (store.trials(sweep=sweep), metrics):
        if not table.num_rows:
            continue
        for key, attempt in zip(table.column("key").to_pylist(),
                                table.column("attempt").to_pylist()):
            if key is not None and attempt is not None:
                tops[key] = max(tops.get(key, 0), int(attempt))
    for key, step in zip(metrics.column("key").to_pylist(), metrics.column("step").to_pylist()):
        if key is not None and step is not None:
            steps[key] = max(steps.get(key, 0), int(step))
    return tops, steps


def attempts(store, sweep: str) -> dict[str, int]:
    """key -> the highest attempt the store holds for it (rows of trials and metrics)."""
    return held(store, sweep)[0]


def statuses(store, sweep: str) -> dict[str, str]:
    """key -> latest status in the store."""
    if sweep not in store.sweeps():
        return {}
    rows = store.trials(sweep=sweep).select(["key", "status"]).to_pylist()
    return {r["key"]: r["status"] for r in rows}


def unfinished(store, spec, plan, results) -> list[str]:
    """Keys this run should have ended (the trials it started, and the planned trials with
    fixed hyperparameters) whose latest status in the store is not terminal, sorted."""
    from equisweep.sweep.stacking import members

    expected = {m["key"] for r in results if r.config
                for m in members(r.config) if "key" in m}
    cells = {c.key: c for c in spec.cells()}
    for slot in plan.slots:
        if slot.hparams is not None:
            expected.add(spec.cell_trial(cells[slot.cell_key], slot.hparams).key)
    status = statuses(store, spec.name)
    return sorted(k for k in expected if status.get(k) not in TERMINAL)
