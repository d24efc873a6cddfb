"""Resume writes into the store it is given, even when the store moved since submission.

Tune pickles absolute locations into its experiment state: the store callback's store and
every trial's storage, including the storage of trials its search generator creates after
a restore (Ray restores the generator's `Experiment` with the submission-time storage,
while `Tuner.restore(path)` relocates only the trials it restores). `bind` records, for
this driver process, where a sweep's store and Tune state are now; the store callback and
`RelocatingScheduler` apply it to everything Tune unpickles or creates.
"""

from __future__ import annotations

import copy

import pyarrow.fs as pafs
from ray.tune.schedulers import FIFOScheduler

_STORES: dict[str, str] = {}
_TUNE: dict[str, tuple[pafs.FileSystem, str]] = {}


def bind(sweep: str, store_uri: str, tune_root: str) -> None:
    """Sweep `sweep` resumes in this process with its store at `store_uri` and its Tune
    storage (the parent of the experiment folder) at `tune_root`."""
    _STORES[sweep] = store_uri
    if "://" in tune_root:
        fs, path = pafs.FileSystem.from_uri(tune_root)
    else:
        fs, path = pafs.LocalFileSystem(), tune_root
    _TUNE[sweep] = (fs, path.rstrip("/"))


def bound_store(sweep: str, default: str) -> str:
    return _STORES.get(sweep, default)


class RelocatingScheduler(FIFOScheduler):
    """FIFO scheduling; a trial added with storage other than the bound one is moved to it
    before it can start (so its checkpoints go where the resumed sweep lives)."""

    def __init__(self, sweep: str):
        super().__init__()
        self.sweep = sweep

    def on_trial_add(self, tune_controller, trial):
        fork_store = trial.config.get("fork_store")
        if self.sweep in _STORES and fork_store:  # WSD fork checkpoints live in the store
            trial.config["fork_store"] = (_STORES[self.sweep], fork_store[1])
        target = _TUNE.get(self.sweep)
        if target is not None and trial.storage.storage_fs_path != target[1]:
            storage = copy.copy(trial.storage)
            storage.storage_filesystem, storage.storage_fs_path = target
            trial.set_storage(storage)  # also moves the paths of its tracked checkpoints
        super().on_trial_add(tune_controller, trial)
