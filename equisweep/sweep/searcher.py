"""The sweep's Tune searcher: an exhaustive scaling grid, hyperparameters searched per cell.

Ray's own OptunaSearch runs one study over the whole space, which would let TPE trade grid
cells against each other. A scaling study needs every cell, so this searcher walks the
planned slots (cell, hparams-or-ask) in order and keeps one Optuna study per cell (ask/tell).
Its whole state pickles, so `Tuner.restore` resumes the search where it stopped.
"""

from __future__ import annotations

import pickle

from ray.tune.search import Searcher

from equisweep.sweep import faults
from equisweep.sweep.plan import Slot


class CellSearcher(Searcher):
    def __init__(self, spec, slots: list[Slot], prior: dict[str, list[tuple[dict, float]]],
                 data_dir: str | None = None, objective: str = "val_loss"):
        super().__init__(metric=None, mode=None)
        self.spec = spec
        self.slots = list(slots)
        self.prior = prior
        self.data_dir = data_dir
        self.objective = objective
        self.next_slot = 0
        self.live: dict[str, tuple[str, int | None]] = {}  # trial_id -> (cell, optuna number)
        self._studies: dict = {}

    def _cells(self) -> dict:
        return {c.key: c for c in self.spec.cells()}

    def _study(self, cell_key: str):
        if cell_key not in self._studies:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            cell = self._cells()[cell_key]
            sampler = optuna.samplers.TPESampler(seed=self.spec.sampler_seed(cell))
            study = optuna.create_study(direction="minimize", sampler=sampler)
            space = self.spec.optuna_space()
            for hparams, value in self.prior.get(cell_key, []):
                params = {k: hparams[k] for k in space if k in hparams}
                if len(params) == len(space):
                    study.add_trial(optuna.trial.create_trial(
                        params=params, distributions=space, value=value))
            self._studies[cell_key] = study
        return self._studies[cell_key]

    def suggest(self, trial_id: str):
        if self.next_slot >= len(self.slots):
            return Searcher.FINISHED
        slot = self.slots[self.next_slot]
        self.next_slot += 1
        cell = self._cells()[slot.cell_key]
        number = None
        hparams = slot.hparams
        if hparams is None:
            study = self._study(slot.cell_key)
            trial = study.ask(self.spec.optuna_space())
            number, hparams = trial.number, dict(trial.params)
        config = self.spec.cell_trial(cell, hparams)
        self.live[trial_id] = (slot.cell_key, number)
        return trial_payload(config, self.data_dir)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        cell_key, number = self.live.pop(trial_id, (None, None))
        if number is None:
            return
        import optuna

        study = self._study(cell_key)
        value = None if (error or not result) else result.get(self.objective)
        ok = (value is not None and value == value and result.get("status") == "finished")
        if ok:
            study.tell(number, float(value))
        else:
            study.tell(number, state=optuna.trial.TrialState.FAIL)

    def save(self, checkpoint_path: str):
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str):
        # Tune's own experiment folder, written by this driver: trusted like Tune's state.
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


def trial_payload(config, data_dir: str | None) -> dict:
    """What Tune stores as the trial's config: the trainer's dict plus driver metadata."""
    d = config.to_dict()
    size = "-".join(f"{k[0]}{v}" for k, v in sorted(config.size.items())
                    if k in ("width", "depth"))
    return {
        "trial": d,
        "key": config.key,
        "n_params": config.n_params,
        "equivariant": config.equivariant,
        "flops_per_step": config.flops_per_step,
        "data_dir": data_dir,
        "fault": faults.from_environment(),
        "label": f"{config.family}-{size}-s{config.steps}-d{config.train_trajectories}"
                 f"{'-aug' if config.augment else ''}-{config.key[:8]}",
    }
