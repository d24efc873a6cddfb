"""Row builders shared by the results-store tests (uniquely named: tests/ has no packages)."""

from __future__ import annotations


def trial(key, status="running", attempt=1, **extra):
    row = {"key": key, "family": "gatr", "size": {"width": 8, "depth": 2}, "n_params": 1000,
           "flops_per_step": 1e6, "steps": 10, "train_trajectories": 16, "augment": False,
           "seed": 0, "hparams": {"lr": 1e-3}, "config": {"steps": 10}, "status": status,
           "attempt": attempt, "node": "n1"}
    row.update(extra)
    return row


def metric(key, step, attempt=1, **extra):
    row = {"key": key, "attempt": attempt, "step": step, "samples": step * 16,
           "flops": step * 1e6, "train_loss": 1.0 / (step + 1)}
    row.update(extra)
    return row


def stored_files(store, under: str = "") -> list[str]:
    """Paths, relative to the store's root, of the files under `under`: on a local folder
    and on an object store alike (what a test would otherwise glob on disk)."""
    from pyarrow import fs

    base = f"{store.root}/{under}".rstrip("/")
    infos = store.filesystem.get_file_info(fs.FileSelector(base, recursive=True,
                                                           allow_not_found=True))
    return sorted(i.path[len(store.root) + 1:] for i in infos if i.type == fs.FileType.File)


def part_files(store, under: str = "") -> list[str]:
    """The store's Parquet fragments under `under` (not temporary or meta files)."""
    return [p for p in stored_files(store, under) if p.rsplit("/", 1)[-1].startswith("part-")]
