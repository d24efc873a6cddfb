"""A tiny sweep of both families: seconds per trial on a 2-core CPU."""

from __future__ import annotations

import pytest
import yaml


def tiny_sweep_dict(name: str = "tiny", **overrides) -> dict:
    spec = {
        "name": name,
        "task": {"name": "rigid_body", "trajectories": 12, "bodies": [3, 4], "vertices": 6,
                 "frames": 24, "val_trajectories": 6, "test_trajectories": 6, "seed": 0},
        "families": {
            "gatr": {"sizes": [{"width": 2, "depth": 1}]},
            "transformer": {"sizes": [{"width": 8, "depth": 1}], "augment": True},
        },
        "grid": {"steps": [20], "train_trajectories": [8], "seed": [0]},
        "search": {"method": "optuna", "samples_per_cell": 2,
                   "params": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}}},
        "training": {"batch_size": 4, "eval_every": 10, "checkpoint_every": 10},
        "resources": {"cpu": 1},
        "max_concurrent": 2,
        "retries": 2,
    }
    for key, value in overrides.items():
        spec[key] = value
    return spec


@pytest.fixture
def write_sweep(tmp_path):
    def write(name: str = "tiny", **overrides):
        d = tiny_sweep_dict(name, **overrides)
        d.setdefault("store", str(tmp_path / "store"))
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(d))
        return path

    return write
