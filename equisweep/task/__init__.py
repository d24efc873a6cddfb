"""The rigid-body benchmark: procedural convex bodies thrown onto a floor, simulated with
MuJoCo, stored as sharded poses, served as padded batches of vertex tokens (DESIGN §3, §10).

Importing this package is cheap: heavy modules (torch, scipy, MuJoCo) load on first use of
the name that needs them.
"""

from __future__ import annotations

from importlib import import_module

from equisweep.task.config import SHAPE_KINDS, TaskConfig, default_cache_dir

_LAZY = {
    "ensure_dataset": "equisweep.task.generate",
    "load_manifest": "equisweep.task.generate",
    "RigidBodyDataset": "equisweep.task.dataset",
    "collate": "equisweep.task.dataset",
}

__all__ = ["SHAPE_KINDS", "TaskConfig", "default_cache_dir", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'equisweep.task' has no attribute {name!r}")
