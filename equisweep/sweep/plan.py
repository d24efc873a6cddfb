"""Planning a sweep without Ray: which trials are left, and what the budget admits.

Resubmitting a sweep skips every trial whose key already finished in the store; Optuna cells
count their finished trials against `samples_per_cell` and seed their studies with them, and
the searcher is handed the finished keys so that no draw of a continued study reruns one.
Nothing here imports Ray, so a sweep that is already done costs no cluster start-up.

Under `schedule: wsd` the unit of planning is the share (a group and one hyperparameter
sample, `equisweep.spec.trunks`): its pending lengths whose fork checkpoint survives from an
earlier run are `forked` slots (they train only their decay); of the rest, the longest is
the `trunk` and the others are `branch` slots that wait for its forks. A length whose trunk
already finished but whose fork is gone simply becomes its own trunk: its config is that of
a standalone run, so the result is the same, only dearer. The budget counts each slot at
what it adds to the real spend.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from equisweep.spec import trunks


@dataclass
class Slot:
    """One planned trial: a cell, and either fixed hparams (grid/random) or None (ask Optuna).

    WSD slots also carry their `share`, their `role` (trunk | branch | forked) and their
    `fork_step`; `study` names the Optuna study a slot asks (its cell, or under WSD its group).
    """

    cell_key: str
    hparams: dict | None
    share: str | None = None
    role: str | None = None
    fork_step: int | None = None
    study: str | None = None


@dataclass
class Plan:
    slots: list  # [Slot]
    prior: dict  # study key -> [(hparams, val_loss)] of finished trials (seeds Optuna)
    done: int  # trials already finished in the store
    skipped_budget: int
    spent_flops: float  # training FLOPs the finished trials used (shared trunk steps once)
    planned_flops: float  # training FLOPs the planned slots will use (shared steps once)
    planned_points_flops: float = 0.0  # standalone FLOPs of the planned points
    done_keys: frozenset = frozenset()  # keys whose latest status is finished (never rerun)


def plan_sweep(spec, store, forks=None) -> Plan:
    """`forks`: the sweep's fork checkpoints (`ForkStore`), consulted under WSD."""
    finished = _finished_trials(store, spec.name)
    cells = _CellIndex(spec)
    cd = trunks.cooldown(spec)
    prior: dict[str, list] = {}
    done_per_cell: dict[str, int] = {}
    spent = 0.0
    wsd = trunks.is_wsd(spec)
    done_samples: dict[str, dict[str, set]] = {}  # wsd optuna: group -> hparams blob -> steps
    for key, (cfg, val_loss, fork, cell_key) in finished.items():
        cell = cells.find(key, cfg, cell_key)
        if cell is None:
            continue  # a trial of an earlier version of the sweep file
        done_per_cell[cell.key] = done_per_cell.get(cell.key, 0) + 1
        spent += cell.flops_per_step * (cell.steps - (fork or 0))
        study = trunks.group_key(spec, cell) if wsd else cell.key
        if wsd:
            blob = trunks.share_id("", cfg["hparams"])
            done_samples.setdefault(study, {}).setdefault(blob, set()).add(cell.steps)
            if cell.steps != max(spec.grid.steps):
                continue  # a WSD study is told its trunks' (the longest length's) losses
        if val_loss is not None:
            prior.setdefault(study, []).append((cfg["hparams"], val_loss))

    ready = forks.ready() if (wsd and forks is not None) else set()
    interrupted = _interrupted_hparams(store, spec, cells) if not wsd else {}
    members = _candidates(spec, finished, done_per_cell, done_samples, ready, interrupted)
    kept, skipped = trunks.apply_budget(members, spec.budget_flops, cd, spent)
    if wsd:
        _assign_roles(kept, cd)
    slots = [m.obj for m in kept]
    return Plan(slots, prior, sum(done_per_cell.values()), len(skipped), spent,
                trunks.spend(kept, cd), sum(m.total_flops for m in kept), frozenset(finished))


class _NothingStored:
    def sweeps(self) -> list:
        return []


def fresh_plan(spec) -> Plan:
    """The plan of `spec` as if nothing of it had run yet (what `validate` shows)."""
    return plan_sweep(spec, _NothingStored())


def _candidates(spec, finished, done_per_cell, done_samples, ready, interrupted=None) -> list:
    """The trials still to run, in spec order, as `trunks.Member`s holding their Slot."""
    wsd = trunks.is_wsd(spec)
    out = []
    if spec.search.method != "optuna":
        cells = {c.key: c for c in spec.cells()}
        for t in spec.trials():
            if t.key in finished:
                continue
            cell_share = None
            if wsd:
                cell_share = trunks.share_id(trunks.group_key(spec, cells[t.cell_key]),
                                             t.hparams)
            slot = Slot(t.cell_key, dict(t.hparams), share=cell_share, study=t.cell_key)
            out.append(trunks.Member(t.steps, t.flops_per_step, cell_share, key=t.key,
                                     forked=t.key in ready, obj=slot))
        return out
    spc = spec.search.samples_per_cell
    for cell in spec.cells():
        if not wsd:
            left = spc - done_per_cell.get(cell.key, 0)
            # Draws an earlier run handed out but did not end continue with their hparams
            # (and their checkpoints) rather than being drawn anew.
            for hparams in (interrupted or {}).get(cell.key, [])[:max(0, left)]:
                t = spec.cell_trial(cell, hparams)
                out.append(trunks.Member(cell.steps, cell.flops_per_step, key=t.key,
                                         obj=Slot(cell.key, dict(t.hparams), study=cell.key)))
                left -= 1
            out += [trunks.Member(cell.steps, cell.flops_per_step,
                                  obj=Slot(cell.key, None, study=cell.key))
                    for _ in range(max(0, left))]
            continue
        group = trunks.group_key(spec, cell)
        known = done_samples.get(group, {})
        # Samples some length of which finished: their other lengths keep those hparams.
        for blob, steps_done in known.items():
            if cell.steps in steps_done:
                continue
            hparams = json.loads(blob.split(":", 1)[1])
            t = spec.cell_trial(cell, hparams)
            share = trunks.share_id(group, t.hparams)
            out.append(trunks.Member(cell.steps, cell.flops_per_step, share, key=t.key,
                                     forked=t.key in ready,
                                     obj=Slot(cell.key, dict(t.hparams), share=share,
                                              study=group)))
        for i in range(max(0, spc - len(known))):
            share = trunks.share_id(group, None, i)
            out.append(trunks.Member(cell.steps, cell.flops_per_step, share,
                                     obj=Slot(cell.key, None, share=share, study=group)))
    return out


def _assign_roles(kept: list, cooldown: float) -> None:
    """Per share: the longest length not already forked is the trunk, the rest branches."""
    by_share: dict[str, list] = {}
    for m in kept:
        if m.forked:
            m.obj.role = "forked"
            m.obj.fork_step = trunks.fork_step(m.steps, cooldown)
        else:
            by_share.setdefault(m.share, []).append(m)
    for members in by_share.values():
        top = max(members, key=lambda m: m.steps)
        for m in members:
            m.obj.role = "trunk" if m is top else "branch"
            m.obj.fork_step = None if m is top else trunks.fork_step(m.steps, cooldown)


def _interrupted_hparams(store, spec, cells) -> dict[str, list[dict]]:
    """cell key -> hparams of this sweep's trials whose latest status is `running` (their
    driver was stopped): an Optuna cell continues them instead of drawing new samples."""
    if spec.search.method != "optuna" or spec.name not in store.sweeps():
        return {}
    trials = store.trials(sweep=spec.name)
    if not trials.num_rows:
        return {}
    out: dict[str, list[dict]] = {}
    cols = [c for c in ("key", "status", "config", "cell_key") if c in trials.column_names]
    rows = sorted(trials.select(cols).to_pylist(), key=lambda r: r["key"])
    for row in rows:
        if row["status"] != "running" or not row["config"]:
            continue
        cfg = json.loads(row["config"])
        cell = cells.find(row["key"], cfg, row.get("cell_key"))
        if cell is not None:
            out.setdefault(cell.key, []).append(cfg["hparams"])
    return out


class _CellIndex:
    """Which of the spec's cells a stored trial belongs to. The cell key (grid point, task
    and training hashed) is stored on every trial row; a row written before it was has its
    trial key checked against the key this spec gives the cell with the row's hparams. A
    trial of another dataset or training setup (a resubmitted sweep whose `task.delta` or
    `training` changed) belongs to no cell: it is never counted as done."""

    def __init__(self, spec):
        self.spec = spec
        self.by_key = {c.key: c for c in spec.cells()}
        self.by_point = {_point(c.to_dict()): c for c in spec.cells()}

    def find(self, key: str, cfg: dict, cell_key: str | None):
        if cell_key:
            return self.by_key.get(cell_key)
        try:
            cell = self.by_point.get(_point(cfg))
            if cell is not None and self.spec.cell_trial(cell, cfg["hparams"]).key == key:
                return cell
        except (KeyError, TypeError, ValueError):
            pass  # a config of an older layout: not a trial of this spec
        return None


def _point(d: dict) -> str:
    return json.dumps([d["family"], d["size"], d["steps"], d["train_trajectories"],
                       bool(d["augment"]), d["seed"]], sort_keys=True)


def _finished_trials(store, sweep: str) -> dict[str, tuple]:
    """key -> (trial config, final val_loss, fork step, cell key) of trials whose latest
    status is finished; the fork step (a WSD branch that started from its trunk's fork) is
    None for a trial that trained from its first step, the cell key None on rows written
    before trial rows carried it."""
    if sweep not in store.sweeps():
        return {}
    final = store.final(sweep=sweep).to_pylist()
    forks = {}
    trials = store.trials(sweep=sweep)
    if "fork_step" in trials.column_names:
        forks = {r["key"]: r["fork_step"] for r in trials.select(["key", "fork_step"]).to_pylist()}
    out = {}
    for row in final:
        if row.get("status") != "finished":
            continue
        val = row.get("val_loss")
        out[row["key"]] = (json.loads(row["config"]), None if val is None else float(val),
                           forks.get(row["key"]), row.get("cell_key"))
    return out
