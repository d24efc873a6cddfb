"""The sweep's Tune searcher: an exhaustive scaling grid, hyperparameters searched per cell.

Ray's own OptunaSearch runs one study over the whole space, which would let TPE trade grid
cells against each other. A scaling study needs every cell, so this searcher walks the
planned slots (cell, hparams-or-ask) in order and keeps one Optuna study per cell (ask/tell).
Tune pickles its state into the experiment folder, but it is never loaded back: a resumed
sweep is planned again from the store.

Under `schedule: wsd` (see `equisweep.spec.trunks`, `equisweep.sweep.plan`) a study belongs
to a group (all lengths): the trunk slot of a share asks it, its branches inherit that
sample, and the trunk's final validation loss is told. A branch is suggested only once it
can start: its fork checkpoint exists, or its trunk ended without writing it (then it trains
from scratch, as the standalone run its config describes). Until then `suggest` returns
None, which tells Tune "nothing now, ask again later" — trunks are never held back by their
branches, and branches run beside their trunk on whatever trial slots are free. Ready
branches go before new trunks: they are short and release their fork checkpoints.

Stacks (`sweep.stacking`): slots the plan groups into one stack are handed out together as
one Tune trial (`{"stack": [payload, ...]}`); an Optuna cell is asked once per member
before any member is told, and each member's final result, reported while its stack may
still run, tells that member's own Optuna trial (`on_trial_result`).
"""

from __future__ import annotations

import logging
import pickle
import time

from ray.tune.search import Searcher

from equisweep.sweep.plan import Slot
from equisweep.sweep.stacking import stack_payload

_POLL_S = 1.0  # how often pending branches look for their fork checkpoints
_ENDS = ("finished", "diverged", "failed")
_DRAWS = 200  # draws of a study that repeat done keys before its space counts as used up
log = logging.getLogger(__name__)


class CellSearcher(Searcher):
    def __init__(self, spec, slots: list[Slot], prior: dict[str, list[tuple[dict, float]]],
                 data_dir: str | None = None, objective: str = "val_loss", forks=None,
                 done_keys=(), stacks: list[list[int]] | None = None):
        super().__init__(metric=None, mode=None)
        self.spec = spec
        self.slots = list(slots)
        self.prior = prior
        self.data_dir = data_dir
        self.objective = objective
        self.forks = forks  # ForkStore of this sweep (WSD)
        self.taken: set[int] = set()
        self.live: dict[str, tuple[str, int | None]] = {}  # trial_id -> (study, optuna number)
        # A stack's trial_id -> (study, optuna number) per member; None once told.
        self.stack_live: dict[str, list[tuple[str, int | None] | None]] = {}
        # A stack's trial_id -> (role, share, key) per member under WSD; None once ended.
        self.stack_roles: dict[str, list[tuple[str, str, str] | None]] = {}
        self.stack_of = {i: group for group in (stacks or []) for i in group
                         if len(group) > 1}  # slot -> the slots of its stack
        self.roles: dict[str, tuple[str, str, str]] = {}  # trial_id -> (role, share, key)
        self.share_hparams: dict[str, dict] = {}
        self.share_trunk: dict[str, str] = {}  # share -> trunk trial key, once suggested
        self.trunk_ended: set[str] = set()  # shares whose trunk trial is over
        self._ready: set[str] = set()
        self._polled = 0.0
        self._studies: dict = {}
        self.used: set[str] = set(done_keys)  # finished in the store, or handed out here
        self._reserved = {spec.cell_trial(self._cells()[s.cell_key], s.hparams).key
                          for s in self.slots if s.hparams is not None}

    @property
    def next_slot(self) -> int:  # slots handed out so far
        return len(self.taken)

    def _cells(self) -> dict:
        return {c.key: c for c in self.spec.cells()}

    def _study(self, study_key: str, cell_key: str):
        if study_key not in self._studies:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            cell = self._cells()[cell_key]
            sampler = optuna.samplers.TPESampler(seed=self.spec.sampler_seed(cell))
            study = optuna.create_study(direction="minimize", sampler=sampler)
            space = self.spec.optuna_space()
            for hparams, value in self.prior.get(study_key, []):
                params = {k: hparams[k] for k in space if k in hparams}
                if len(params) == len(space):
                    study.add_trial(optuna.trial.create_trial(
                        params=params, distributions=space, value=value))
            self._studies[study_key] = study
        return self._studies[study_key]

    # ---- which slot next ------------------------------------------------------------------
    def _poll_forks(self) -> None:
        if self.forks is None or time.monotonic() - self._polled < _POLL_S:
            return
        self._polled = time.monotonic()
        self._ready = self.forks.ready()

    def _branch_key(self, slot: Slot) -> str | None:
        hp = self.share_hparams.get(slot.share, slot.hparams)
        if hp is None:
            return None
        return self.spec.cell_trial(self._cells()[slot.cell_key], hp).key

    def _pick(self) -> int | None:
        pending = [i for i in range(len(self.slots)) if i not in self.taken]
        waiting = [i for i in pending if self.slots[i].role == "branch"]
        if waiting:
            self._poll_forks()
        for i in pending:
            slot = self.slots[i]
            if slot.role == "forked":
                return i
            if slot.role == "branch" and slot.share in self.share_trunk and (
                    slot.share in self.trunk_ended or self._branch_key(slot) in self._ready):
                return i
        for i in pending:
            if self.slots[i].role != "branch":
                return i
        return None

    def suggest(self, trial_id: str):
        while len(self.taken) < len(self.slots):
            i = self._pick()
            if i is None:
                return None  # only branches left, waiting for their forks: Tune asks again
            if i in self.stack_of:
                payload = self._suggest_stack(trial_id, self.stack_of[i])
            else:
                payload = self._suggest_slot(trial_id, i)
            if payload is not None:
                return payload
        return Searcher.FINISHED

    def _suggest_stack(self, trial_id: str, group: list[int]):
        """The stack of the slots `group` still pending (their Optuna draws all asked before
        any is told), or None when every one of them was dropped. A stack left with one
        member runs as that lone trial."""
        parts = [got for j in group if j not in self.taken
                 if (got := self._member(j)) is not None]
        if not parts:
            return None
        roles = [self._with_wsd(payload, slot) if slot.role else None
                 for payload, slot, _ in parts]
        if len(parts) == 1:
            payload, slot, number = parts[0]
            if slot.role in ("trunk", None) or number is not None:
                self.live[trial_id] = (slot.study or slot.cell_key, number)
            if roles[0]:
                self.roles[trial_id] = roles[0]
            return payload
        self.stack_live[trial_id] = [(slot.study or slot.cell_key, number)
                                     for _, slot, number in parts]
        if any(roles):
            self.stack_roles[trial_id] = roles
        return stack_payload([payload for payload, _, _ in parts])

    def _suggest_slot(self, trial_id: str, i: int):
        """The trial of slot `i`, or None when it would repeat a key that finished or was
        handed out: then the slot (under WSD its whole share) is dropped."""
        got = self._member(i)
        if got is None:
            return None
        payload, slot, number = got
        if slot.role in ("trunk", None) or number is not None:
            self.live[trial_id] = (slot.study or slot.cell_key, number)
        if slot.role:
            self.roles[trial_id] = self._with_wsd(payload, slot)
        return payload

    def _with_wsd(self, payload: dict, slot: Slot) -> tuple[str, str, str]:
        """Add a WSD slot's role and fork store to its payload; its (role, share, key)."""
        key = payload["key"]
        payload["wsd"] = self._wsd_payload(slot, key)
        payload["fork_store"] = (self.forks.store_uri, self.forks.sweep) if self.forks \
            else None
        return slot.role, slot.share, key

    def _member(self, i: int) -> tuple[dict, Slot, int | None] | None:
        """Take slot `i`: its trial payload, the slot, and its Optuna trial number (None
        for fixed hparams); None when it would repeat a key that finished or was handed
        out: then the slot (under WSD its whole share) is dropped."""
        self.taken.add(i)
        slot = self.slots[i]
        cell = self._cells()[slot.cell_key]
        number = None
        hparams = self.share_hparams.get(slot.share) if slot.share else None
        hparams = hparams if hparams is not None else slot.hparams
        if hparams is None:
            study = self._study(slot.study or slot.cell_key, slot.cell_key)
            number, hparams = self._ask(study, slot, cell)
            if hparams is None:
                self._drop(slot)
                return None
        config = self.spec.cell_trial(cell, hparams)
        if slot.hparams is not None:  # a planned trial: the plan left out finished keys
            self._reserved.discard(config.key)
            if config.key in self.used:
                self._drop(slot)
                return None
        self.used.add(config.key)
        if slot.share:
            self.share_hparams.setdefault(slot.share, dict(config.hparams))
        return trial_payload(config, self.data_dir), slot, number

    def _ask(self, study, slot: Slot, cell) -> tuple[int | None, dict | None]:
        """A draw of `study` none of whose trial keys (under WSD: every length of its share)
        finished, was handed out or is planned with fixed hparams. A seeded sampler replays
        its first draws when a finished sweep is resubmitted with more samples per cell, so
        a repeat is told as failed (TPE models only completed trials) and drawn again."""
        import optuna

        space = self.spec.optuna_space()
        cells = self._cells()
        lengths = [o.cell_key for o in self.slots if slot.share and o.share == slot.share]
        for _ in range(_DRAWS):
            trial = study.ask(space)
            hp = self.spec.cell_trial(cell, dict(trial.params)).hparams
            keys = {self.spec.cell_trial(cells[c], hp).key for c in lengths or [cell.key]}
            if not keys & (self.used | self._reserved):
                self.used |= keys  # the share's branches inherit this sample
                return trial.number, dict(trial.params)
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
        log.warning("sweep %s, cell %s: %d draws repeated finished or running trials (the "
                    "search space is used up): one sample fewer", self.spec.name,
                    cell.key, _DRAWS)
        return None, None

    def _drop(self, slot: Slot) -> None:
        """Never run a slot twice: it (and the rest of its WSD share) is taken, unrun."""
        for j, other in enumerate(self.slots):
            if other is slot or (slot.share and other.share == slot.share):
                self.taken.add(j)

    def _wsd_payload(self, slot: Slot, key: str) -> dict:
        if slot.role == "trunk":
            self.share_trunk[slot.share] = key
            forks = []
            for j, other in enumerate(self.slots):
                if j not in self.taken and other.share == slot.share and other.role == "branch":
                    forks.append([other.fork_step, self._branch_key(other)])
            return {"role": "trunk", "trunk": key, "fork_step": None, "forks": sorted(forks)}
        if slot.role == "forked":
            info = self.forks.info(key) if self.forks else None
            return {"role": "branch", "trunk": (info or {}).get("trunk"),
                    "fork_step": slot.fork_step}
        if key in self._ready or (self.forks and self.forks.info(key)):
            return {"role": "branch", "trunk": self.share_trunk[slot.share],
                    "fork_step": slot.fork_step}
        # Its trunk ended before reaching the fork (diverged, or failed for good).
        return {"role": "standalone", "trunk": None, "fork_step": None}

    # ---- results --------------------------------------------------------------------------
    def on_trial_result(self, trial_id: str, result: dict) -> None:
        """A stack member's final row tells its own Optuna trial, while its mates train on."""
        member = result.get("member")
        if member is None or result.get("status") not in _ENDS:
            return
        roles = self.stack_roles.get(trial_id)
        if roles and roles[int(member)] is not None:
            # A stacked trunk that ended: its branches that have no fork start alone.
            role, share, _ = roles[int(member)]
            roles[int(member)] = None
            if role == "trunk":
                self.trunk_ended.add(share)
        told = self.stack_live.get(trial_id)
        if told is None:
            return
        entry, told[int(member)] = told[int(member)], None
        if entry is not None:
            self._tell(*entry, result, error=False)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        for role in self.stack_roles.pop(trial_id, None) or []:
            if role is not None and role[0] == "trunk":
                self.trunk_ended.add(role[1])
        for entry in self.stack_live.pop(trial_id, None) or []:
            if entry is not None:  # a member whose end never came: the stack failed
                self._tell(*entry, None, error=True)
        role, share, key = self.roles.pop(trial_id, (None, None, None))
        if role == "trunk":
            self.trunk_ended.add(share)
        ok_status = bool(result) and result.get("status") == "finished" and not error
        if role in ("branch", "forked") and ok_status and self.forks is not None:
            self.forks.delete(key)  # its last user is done; a failed one keeps it for a retry
        study_key, number = self.live.pop(trial_id, (None, None))
        self._tell(study_key, number, result, error)

    def _tell(self, study_key: str | None, number: int | None, result: dict | None,
              error: bool) -> None:
        if number is None:
            return
        import optuna

        ok_status = bool(result) and result.get("status") == "finished" and not error
        study = self._study(study_key, self._study_cell(study_key))
        value = None if (error or not result) else result.get(self.objective)
        if value is not None and value == value and ok_status:
            study.tell(number, float(value))
        else:
            study.tell(number, state=optuna.trial.TrialState.FAIL)

    def _study_cell(self, study_key: str) -> str:
        for slot in self.slots:
            if (slot.study or slot.cell_key) == study_key:
                return slot.cell_key
        return study_key

    def save(self, checkpoint_path: str):
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str):
        # Tune's state lives in the store, which others may write: it is never unpickled.
        # A resumed sweep is planned again from the store (`equisweep.sweep.driver`).
        raise RuntimeError("equisweep never restores pickled searcher state; use "
                           "`equisweep resume NAME`, which plans the rest from the store")


def trial_payload(config, data_dir: str | None) -> dict:
    """What Tune stores as the trial's config: the trainer's dict plus driver metadata."""
    d = config.to_dict()
    size = "-".join(f"{k[0]}{v}" for k, v in sorted(config.size.items())
                    if k in ("width", "depth"))
    return {
        "trial": d,
        "key": config.key,
        "cell_key": config.cell_key,
        "n_params": config.n_params,
        "equivariant": config.equivariant,
        "flops_per_step": config.flops_per_step,
        "data_dir": data_dir,
        "label": f"{config.family}-{size}-s{config.steps}-d{config.train_trajectories}"
                 f"{'-aug' if config.augment else ''}-{config.key[:8]}",
    }
