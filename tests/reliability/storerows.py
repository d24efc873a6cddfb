"""A minimal real sweep in a store, written through the store's own writer."""

from __future__ import annotations

import json
from pathlib import Path

from equisweep.store import open_store


def write_minimal_sweep(store: Path, sweep: str, keys=("k1",), steps=(10, 20)) -> None:
    w = open_store(store).writer(sweep)
    for key in keys:
        w.add_trial({"key": key, "family": "gatr", "size": json.dumps({"width": 2}),
                     "n_params": 100, "flops_per_step": 1e6, "steps": max(steps),
                     "train_trajectories": 8, "augment": False, "seed": 0,
                     "hparams": json.dumps({"lr": 1e-3}), "config": json.dumps({}),
                     "status": "finished", "attempt": 1, "node": "n1"})
        w.add_metrics([{"key": key, "attempt": 1, "step": s, "samples": s * 4,
                        "flops": s * 1e6, "train_loss": 1.0 / s, "val_loss": 1.0 / s}
                       for s in steps])
    w.close()
