"""Weights-only checkpoints that an earlier run of a sweep left in Tune's folder.

`equisweep resume` never loads Tune's experiment state (`tuner.pkl`, the searcher's and
trials' pickles): anyone who can write a shared store could plant code there. A resumed
sweep is rebuilt from what equisweep owns — the recorded spec and the Parquet store say
what is left — and an interrupted trial continues from the newest of its own checkpoints
found here, read as data only: a small JSON tag and `trial.pt` loaded with `weights_only`.

The trainable tags every checkpoint it reports with `equisweep.json` ({"key", "step"});
Tune keeps the folder as `<store>/_tune/<sweep>/<trial dir>/checkpoint_<n>/`. A checkpoint
that is untagged, damaged, or not what its tag says is skipped (an older one, or the first
step, serves instead): a trial is never trained on from a state it cannot verify.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import pyarrow.fs as pafs

from equisweep.store.location import resolve

TAG = "equisweep.json"
CHECKPOINT = "trial.pt"  # equisweep.train.CHECKPOINT_FILE


def tag(checkpoint_dir: str, key: str, step: int) -> None:
    """Mark a checkpoint folder about to be reported as trial `key` at `step`."""
    with open(os.path.join(checkpoint_dir, TAG), "w") as f:
        json.dump({"key": key, "step": int(step)}, f)


def _candidates(fs: pafs.FileSystem, root: str, key: str) -> list[tuple[int, str]]:
    """(step, folder) of the checkpoints tagged with `key`, newest step first."""
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, allow_not_found=True, recursive=True))
    except OSError:
        return []
    found = []
    for info in infos:
        if info.type != pafs.FileType.File or not info.path.endswith("/" + TAG):
            continue
        if "/checkpoint_" not in info.path:
            continue
        try:
            with fs.open_input_stream(info.path) as f:
                meta = json.loads(f.read(4096).decode())
            if meta.get("key") == key:
                found.append((int(meta["step"]), info.path.rsplit("/", 1)[0]))
        except (OSError, ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError):
            continue
    return sorted(found, reverse=True)


def unusable(folder: str) -> str | None:
    """Why the checkpoint in local `folder` cannot be restored (None: it can): `trial.pt`
    cut short, overwritten or missing. Tune hands a retry its newest checkpoint without
    looking inside; restoring a damaged one would fail every retry the same way."""
    from equisweep.train import load_checkpoint

    try:
        state = load_checkpoint(folder)  # weights_only: data, never code
        if not isinstance(state, dict) or "step" not in state:
            return "not a trial checkpoint"
    except Exception as exc:  # noqa: BLE001 - truncated, garbage or planted: say what
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def tagged_step(folder: str) -> int | None:
    """The step a checkpoint folder's tag names (None: no readable tag)."""
    try:
        with open(os.path.join(folder, TAG)) as f:
            return int(json.load(f)["step"])
    except (OSError, ValueError, TypeError, KeyError):
        return None


def fetch_latest(tune_uri: str, key: str, max_step: int | None) -> str | None:
    """A local folder holding the newest verified checkpoint of trial `key` under
    `tune_uri` (the sweep's Tune folder) at a step <= `max_step`, the last step whose row
    the store holds; None when there is none (also when the store holds no row of `key`).

    A checkpoint past the store's last row exists when a driver died after the trainable
    saved it but before the driver stored that step's row: continuing from it would lose
    the rows in between, so an older checkpoint (or the first step) serves instead."""
    from equisweep.train import load_checkpoint

    if max_step is None:
        return None
    fs, root = resolve(tune_uri)
    for step, folder in _candidates(fs, root, key):
        if step > max_step:
            continue
        local = tempfile.mkdtemp(prefix=f"equisweep-prior-{key}-")
        try:
            with fs.open_input_stream(f"{folder}/{CHECKPOINT}") as src, \
                    open(os.path.join(local, CHECKPOINT), "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
            state = load_checkpoint(local)  # weights_only: data, never code
            if isinstance(state, dict) and int(state.get("step", -1)) == step:
                return local
        except Exception:  # noqa: BLE001 - truncated, planted or foreign: not this state
            pass
        shutil.rmtree(local, ignore_errors=True)
    return None
