"""Checkpoint folders: one `trial.pt` each, written atomically, read as data only."""

from __future__ import annotations

import os
from pathlib import Path

import torch

CHECKPOINT_FILE = "trial.pt"


def save_checkpoint(path: Path, state: dict) -> None:
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f".{CHECKPOINT_FILE}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path / CHECKPOINT_FILE)


def load_checkpoint(path: str | Path) -> dict:
    # weights_only: a checkpoint is data, never code (it may come from shared storage).
    return torch.load(Path(path) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
