"""Planning a sweep without Ray: which trials are left, and what the budget admits.

Resubmitting a sweep skips every trial whose key already finished in the store; Optuna cells
count their finished trials against `samples_per_cell` and seed their studies with them.
Nothing here imports Ray, so a sweep that is already done costs no cluster start-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass
class Slot:
    """One planned trial: a cell, and either fixed hparams (grid/random) or None (ask Optuna)."""

    cell_key: str
    hparams: dict | None


@dataclass
class Plan:
    slots: list  # [Slot]
    prior: dict  # cell key -> [(hparams, val_loss)] of finished trials (seeds Optuna)
    done: int  # trials already finished in the store
    skipped_budget: int
    spent_flops: float
    planned_flops: float


def plan_sweep(spec, store) -> Plan:
    finished = _finished_trials(store, spec.name)
    cells = {_cell_identity(c.to_dict()): c for c in spec.cells()}
    prior: dict[str, list] = {}
    done_per_cell: dict[str, int] = {}
    spent = 0.0
    for cfg, val_loss in finished.values():
        cell = cells.get(_cell_identity(cfg))
        if cell is None:
            continue  # a trial of an earlier version of the sweep file
        done_per_cell[cell.key] = done_per_cell.get(cell.key, 0) + 1
        spent += cell.flops
        if val_loss is not None:
            prior.setdefault(cell.key, []).append((cfg["hparams"], val_loss))

    if spec.search.method == "optuna":
        candidates = []
        for cell in spec.cells():
            left = spec.search.samples_per_cell - done_per_cell.get(cell.key, 0)
            candidates += [(cell, Slot(cell.key, None))] * max(0, left)
    else:
        candidates = [
            (t, Slot(t.cell_key, dict(t.hparams)))
            for t in spec.trials() if t.key not in finished
        ]
    done = sum(done_per_cell.values())
    skipped = []
    if spec.budget is not None:
        # Wrap each candidate: Optuna slots of one cell share the cell object.
        costed = [_Costed(obj, slot) for obj, slot in candidates]
        kept, skipped = spec.apply_budget(costed, spent)
        candidates = [(k.obj, k.slot) for k in kept]
    slots = [slot for _, slot in candidates]
    cell_by_key = {c.key: c for c in spec.cells()}
    planned = sum(cell_by_key[s.cell_key].flops for s in slots)
    return Plan(slots, prior, done, len(skipped), spent, planned)


class _Costed:
    def __init__(self, obj, slot):
        self.obj, self.slot = obj, slot
        self.total_flops = obj.total_flops


def _cell_identity(d: dict) -> str:
    return json.dumps([d["family"], d["size"], d["steps"], d["train_trajectories"],
                       bool(d["augment"]), d["seed"]], sort_keys=True)


def _finished_trials(store, sweep: str) -> dict[str, tuple[dict, float | None]]:
    """key -> (trial config, final val_loss) of trials whose latest status is finished."""
    if sweep not in store.sweeps():
        return {}
    final = store.final(sweep=sweep).to_pylist()
    out = {}
    for row in final:
        if row.get("status") != "finished":
            continue
        val = row.get("val_loss")
        out[row["key"]] = (json.loads(row["config"]), None if val is None else float(val))
    return out
