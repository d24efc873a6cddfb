"""Build (or finish, or repair) a cached dataset: shards in parallel, manifest last.

Folder `<cache>/<cfg.key()>/` holds `{split}-{shard:05d}.npz` and `manifest.json`. Shards
and the manifest are written to temporary names and renamed, and the manifest (config plus
each shard's sha256) is written only once every shard is in place, so a folder without a
manifest is never read as a dataset; a rerun keeps the shards that are intact and makes the
rest. Workers only compute bytes; this process writes, so a Ray executor needs no shared
filesystem.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from equisweep.errors import UserError
from equisweep.task.config import FORMAT_VERSION, TaskConfig, default_cache_dir
from equisweep.task.shards import check_shard, generate_shard

MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")


class Executor(Protocol):
    def map(self, fn: Callable, iterable: Iterable) -> Iterator: ...


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:05d}.npz"


def shard_plan(cfg: TaskConfig) -> list[tuple[str, int, int, int]]:
    """(split, shard index, first trajectory, count) for every shard of the dataset."""
    plan = []
    for split, total in cfg.split_sizes().items():
        for index, start in enumerate(range(0, total, cfg.shard_size)):
            plan.append((split, index, start, min(cfg.shard_size, total - start)))
    return plan


def dataset_path(cfg: TaskConfig, cache_dir: str | os.PathLike | None = None) -> Path:
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return root / cfg.key()


def ensure_dataset(
    cfg: TaskConfig,
    cache_dir: str | os.PathLike | None = None,
    workers: int | None = None,
    progress: bool = True,
    executor: Executor | None = None,
    verify: bool = False,
) -> Path:
    """Return the dataset folder for `cfg`, generating whatever is missing first.

    Idempotent and safe to call from several processes at once (a lock file serialises them on
    one machine; elsewhere they write identical bytes). `executor` is anything with a
    concurrent.futures-style `map(fn, iterable)` (the sweep passes a Ray one); by default a
    process pool of `workers` (default: all CPUs). `verify` re-hashes every shard of a
    finished dataset instead of only checking that each is present with the right size.
    """
    cfg.validate()
    path = dataset_path(cfg, cache_dir)
    if path.parent.exists() and not path.parent.is_dir():
        raise UserError(f"cache directory {path.parent} is a file, not a folder")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise UserError(f"workers: expected a positive integer, got {workers!r}")
    if _complete(cfg, path, verify):
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create dataset folder {path}: {exc.strerror}") from None
    with _lock(path.parent / f".{path.name}.lock"):
        if not _complete(cfg, path, verify):
            _build(cfg, path, workers, progress, executor)
    return path


def is_complete(cfg: TaskConfig, cache_dir: str | os.PathLike | None = None,
                verify: bool = False) -> bool:
    """Whether `ensure_dataset(cfg, cache_dir)` would have nothing to do."""
    return _complete(cfg, dataset_path(cfg, cache_dir), verify)


def load_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a finished dataset folder; UserError when `path` is not one."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such dataset folder")
    file = path / MANIFEST
    if not file.exists():
        if any(path.glob("*.npz")):
            raise UserError(f"{path}: dataset is incomplete (no {MANIFEST}; generation was "
                            f"interrupted?); rerun `equisweep data generate` to finish it")
        raise UserError(f"{path}: not an equisweep dataset (no {MANIFEST})")
    if file.is_dir():
        raise UserError(f"{file}: is a folder, not a dataset manifest")
    try:
        manifest = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError):
        raise UserError(f"{file}: damaged manifest (not the JSON equisweep writes)") from None
    except OSError as err:
        raise UserError(f"{file}: cannot read the manifest ({err.strerror})") from None
    problem = _manifest_shape_problem(manifest)
    if problem:
        raise UserError(f"{file}: damaged manifest ({problem})")
    if manifest.get("format") != FORMAT_VERSION:
        raise UserError(f"{file}: dataset format {manifest.get('format')!r}, this equisweep "
                        f"reads format {FORMAT_VERSION}; regenerate it")
    return manifest


_ENTRY_FIELDS = {"file": str, "start": int, "count": int, "bytes": int, "sha256": str}


def _manifest_shape_problem(manifest) -> str | None:
    """What is wrong with the shape of a parsed manifest (the fields readers use)."""
    if not isinstance(manifest, dict):
        return f"the top level is a {type(manifest).__name__}, not an object"
    if not isinstance(manifest.get("config"), dict):
        return "field 'config' is missing or not an object"
    splits = manifest.get("splits")
    if not isinstance(splits, dict) or not splits:
        return "field 'splits' is missing or not an object"
    for name, split in splits.items():
        if not isinstance(split, dict) or not isinstance(split.get("shards"), list):
            return f"splits.{name}: no 'shards' list"
        if not isinstance(split.get("trajectories"), int):
            return f"splits.{name}.trajectories is not an integer"
        for i, entry in enumerate(split["shards"]):
            if not isinstance(entry, dict):
                return f"splits.{name}.shards[{i}] is not an object"
            for key, kind in _ENTRY_FIELDS.items():
                value = entry.get(key)
                if not isinstance(value, kind) or isinstance(value, bool):
                    return f"splits.{name}.shards[{i}].{key} is missing or not {kind.__name__}"
            if "/" in entry["file"] or entry["file"].startswith("."):
                return f"splits.{name}.shards[{i}].file {entry['file']!r} is not a shard name"
    return None


def read_shard_bytes(path: Path, entry: dict) -> bytes:
    """A shard's bytes, checked against the manifest; UserError naming the file otherwise."""
    file = path / entry["file"]
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{file}: shard missing; rerun `equisweep data generate` "
                        f"to repair the dataset") from None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise UserError(f"{file}: shard corrupt (checksum mismatch); rerun `equisweep data "
                        f"generate` to repair the dataset")
    return data


# ---- internals ---------------------------------------------------------------------------------

def _complete(cfg: TaskConfig, path: Path, verify: bool) -> bool:
    file = path / MANIFEST
    if not file.exists():
        return False
    try:
        manifest = json.loads(file.read_text())
        if manifest.get("config") != cfg.generation_dict():
            return False
        for split in manifest["splits"].values():
            for entry in split["shards"]:
                shard = path / entry["file"]
                if not shard.exists() or shard.stat().st_size != entry["bytes"]:
                    return False
                if verify and hashlib.sha256(shard.read_bytes()).hexdigest() != entry["sha256"]:
                    return False
    except (ValueError, KeyError, TypeError, OSError):
        return False
    return True


def _build(cfg, path, workers, progress, executor) -> None:
    from tqdm.auto import tqdm

    gen = cfg.generation_dict()
    key = cfg.key()
    _remove_stale_temporaries(path)
    known = _listed_checksums(path, gen)
    entries: dict[tuple[str, int], dict] = {}
    todo = []
    for split, index, start, count in shard_plan(cfg):
        file = path / shard_name(split, index)
        expect = {"key": key, "split": split, "shard": index, "start": start, "count": count}
        if file.exists():
            data = file.read_bytes()
            # A shard the old manifest lists must match its checksum; one written before an
            # interruption has no checksum yet, so its zip CRCs and header must do.
            listed = known.get(file.name)
            shard = check_shard(data, expect)
            if listed is not None and hashlib.sha256(data).hexdigest() != listed:
                shard = None
            if shard is not None:
                entries[split, index] = _entry(file.name, start, count, data, shard)
                continue
            file.unlink()  # damaged or foreign: make it again
        todo.append((gen, split, index, start, count))
    done = sum(e["count"] for e in entries.values())
    total = sum(cfg.split_sizes().values())
    bar = tqdm(total=total, initial=done, unit="traj", disable=not progress,
               desc=f"generating {path.name}")
    results = _map(generate_shard, todo, workers, executor)
    try:
        for job, data in zip(todo, results):
            _, split, index, start, count = job
            file = path / shard_name(split, index)
            expect = {"key": key, "split": split, "shard": index, "start": start, "count": count}
            shard = check_shard(data, expect)
            if shard is None:
                raise RuntimeError(f"worker returned a bad shard for {file.name}")
            _write_atomic(file, data)
            entries[split, index] = _entry(file.name, start, count, data, shard)
            bar.update(count)
    finally:
        bar.close()
        if hasattr(results, "close"):  # stop the pool now, not when garbage collected
            results.close()
    _write_atomic(path / MANIFEST, json.dumps(_manifest(cfg, entries), indent=1).encode())


def _map(fn, jobs, workers, executor):
    if not jobs:
        return iter(())
    if executor is not None:
        return executor.map(fn, jobs)
    workers = workers or _cpus()
    if workers == 1 or len(jobs) == 1:
        return map(fn, jobs)
    return _pool_map(fn, jobs, min(workers, len(jobs)))


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # the CPUs this process may use (Linux)
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _pool_map(fn, jobs, workers):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # fork, not spawn/forkserver: those re-import the caller's __main__, which breaks any
    # script without a `__main__` guard. The children touch only numpy, scipy and MuJoCo,
    # never the parent's torch thread pools, so fork's thread hazards do not apply.
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
    try:
        yield from pool.map(fn, jobs)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _entry(name, start, count, data, shard) -> dict:
    n_bodies = shard["n_bodies"].astype(np.int64)
    tokens = np.add.reduceat(shard["n_verts"].astype(np.int64),
                             np.concatenate([[0], np.cumsum(n_bodies)[:-1]]))
    return {
        "file": name, "start": start, "count": count, "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "bodies": int(n_bodies.sum()), "bodies_min": int(n_bodies.min()),
        "bodies_max": int(n_bodies.max()), "tokens": int(tokens.sum()),
        "tokens_min": int(tokens.min()), "tokens_max": int(tokens.max()),
    }


def _manifest(cfg: TaskConfig, entries: dict) -> dict:
    import mujoco

    splits = {}
    for split, total in cfg.split_sizes().items():
        shards = [entries[k] for k in sorted(entries) if k[0] == split]
        splits[split] = {"trajectories": total, "shards": shards}
    return {
        "format": FORMAT_VERSION,
        "key": cfg.key(),
        "config": cfg.generation_dict(),
        "frames": cfg.frames,
        "frame_dt": cfg.timestep * cfg.frame_every,
        "up": [0.0, 0.0, 1.0],
        "floor_point": [0.0, 0.0, 0.0],
        # Bytes are reproducible for one MuJoCo/numpy build; record which one made them.
        "generator": {"mujoco": mujoco.__version__, "numpy": np.__version__},
        "splits": splits,
    }


def _write_atomic(file: Path, data: bytes) -> None:
    tmp = file.with_name(f".{file.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, file)
    except OSError as err:
        # A full or read-only cache disk: one line naming the file; the temporary goes (below)
        # and the shards already written are whole, so a rerun after freeing space finishes.
        raise UserError(f"cannot write {file}: {err.strerror or err}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _listed_checksums(path: Path, gen: dict) -> dict[str, str]:
    """file -> sha256 from an existing manifest of the same config (a dataset being
    repaired); empty when there is none."""
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        if manifest.get("config") != gen:
            return {}
        return {e["file"]: e["sha256"] for split in manifest["splits"].values()
                for e in split["shards"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def _remove_stale_temporaries(path: Path, age_s: float = 3600.0) -> None:
    """Temporaries of writers killed mid-write (SIGKILL skips cleanup). Young ones may belong
    to a live writer on another node sharing the folder, so only old ones go."""
    import time

    for tmp in path.glob(".*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            if time.time() - tmp.stat().st_mtime > age_s:
                tmp.unlink()


@contextlib.contextmanager
def _lock(file: Path):
    import fcntl

    with open(file, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
