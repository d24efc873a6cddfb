"""The Ray Tune function trainable: runs equisweep.train for one trial config.

Tune hands us `{"trial": <trial config>, "key": ..., "data_dir": ...}`; we report each row
with `ray.tune.report` (ray.train.report raises inside Tune) and attach checkpoints so a
retried or restored trial continues from its last one.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile

from ray import tune

from equisweep.sweep import prior_checkpoints
from equisweep.sweep.forks import ForkStore
from equisweep.train import iter_trial

# Out-of-memory is recorded on the trial, not retried: a retry would fail the same way.
_RESOURCE_ERRORS = (MemoryError,)
# torch's CPU allocator raises a plain RuntimeError; old CUDA builds did too.
_OOM_TEXT = ("can't allocate memory", "out of memory")


def _is_oom(exc: BaseException) -> bool:
    import torch

    extra = getattr(torch.cuda, "OutOfMemoryError", None)
    if isinstance(exc, _RESOURCE_ERRORS + ((extra,) if extra else ())):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and any(t in text for t in _OOM_TEXT)


def run(config: dict, prior: str | None = None, stored: dict | None = None) -> None:
    """`prior`: the sweep's Tune folder, where an earlier run may have left this trial's
    checkpoints (`prior_checkpoints`): a rebuilt run continues from the newest whose step's
    row the store holds (`stored`: key -> largest stored step, `reconcile.held`).
    A stack of trials (`config["stack"]`, `sweep.stacking`) runs in `run_stack`."""
    if config.get("stack"):
        from equisweep.sweep.stack_trainable import run_stack

        return run_stack(config, prior=prior, stored=stored)
    key = config["key"]
    # One `EquisweepTrial` actor serves several trials (reuse_actors): this line makes a
    # trial findable by name in its worker's log (dashboard: Actors/Logs views).
    print(f"equisweep trial {config.get('label', '')} key {key}", flush=True)
    wsd = config.get("wsd") or {}
    forks = ForkStore(*config["fork_store"]) if config.get("fork_store") else None
    restore = None
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        restore = ckpt.to_directory()
        restore = _verified(restore, f"{ckpt.path}/{prior_checkpoints.CHECKPOINT}", key,
                            prior, (stored or {}).get(key))
    elif prior:
        restore = prior_checkpoints.fetch_latest(prior, key, (stored or {}).get(key))
    workdir = tempfile.mkdtemp(prefix=f"equisweep-{key}-")
    shared = {}  # a WSD branch: the trunk's FLOPs up to its fork, exactly
    if wsd.get("role") == "branch" and forks is not None:
        if restore is None:
            restore, fork_flops = _start_from_fork(forks, key, int(wsd["fork_step"]))
        else:  # resumed from its own checkpoint: the fork's record still says it
            fork_flops = _recorded_fork_flops(forks, key, int(wsd["fork_step"]))
        if fork_flops is not None:
            shared = {"fork_flops": fork_flops}
    # A trunk publishes a fork checkpoint for each of its branches (step -> branch keys).
    fork_keys: dict[int, list[str]] = {}
    for step, branch in wsd.get("forks") or []:
        fork_keys.setdefault(int(step), []).append(branch)
    try:
        rows = iter_trial(config["trial"], checkpoint_dir=workdir, restore_from=restore,
                          data_dir=config.get("data_dir"), fork_steps=sorted(fork_keys))
        last = None
        while True:
            try:
                emit = next(rows)
            except StopIteration:
                break
            if emit.fork_step is not None:
                for branch in fork_keys.get(emit.fork_step, []):
                    forks.put(branch, emit.checkpoint_dir, trunk=key, step=emit.fork_step,
                              flops=emit.fork_flops)
                shutil.rmtree(emit.checkpoint_dir, ignore_errors=True)
                continue
            row = dict(emit.row, **shared)  # not a stored column: the driver's tally reads it
            last = row
            if emit.checkpoint_dir:
                prior_checkpoints.tag(emit.checkpoint_dir, key, row["step"])
                tune.report(_clean(row),
                            checkpoint=tune.Checkpoint.from_directory(emit.checkpoint_dir))
                shutil.rmtree(emit.checkpoint_dir, ignore_errors=True)
            else:
                tune.report(_clean(row))
    except Exception as exc:
        if not _is_oom(exc):
            raise
        # No "step": this report marks the trial, it is not a point of its curve.
        at = f" after step {last['step']}" if last else ""
        tune.report({"status": "failed",
                     "error": f"out of memory{at}: {type(exc).__name__}: {exc}"})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if restore:
            shutil.rmtree(restore, ignore_errors=True)


def _verified(restore: str, where: str, key: str, prior: str | None,
              stored: int | None) -> str | None:
    """`restore` if its checkpoint loads; else (a checkpoint cut short or overwritten in
    Tune's storage) the newest older verified checkpoint of `key`, or None (the first step).
    The rows up to any older checkpoint are stored, so the retry re-reports the same rows
    as a later attempt and nothing is lost. The damaged file is named in the worker's log."""
    why = prior_checkpoints.unusable(restore)
    if why is None:
        return restore
    step = prior_checkpoints.tagged_step(restore)
    shutil.rmtree(restore, ignore_errors=True)
    fallback = None
    if prior:
        bound = step - 1 if step is not None else stored
        fallback = prior_checkpoints.fetch_latest(prior, key, bound)
    instead = "from scratch" if fallback is None else "from an older checkpoint"
    print(f"equisweep: trial {key}: checkpoint {where} cannot be restored ({why}); "
          f"continuing {instead}", file=sys.stderr, flush=True)
    return fallback


def _start_from_fork(forks: ForkStore, key: str, fork_step: int) -> tuple[str | None,
                                                                          float | None]:
    """Fetch a WSD branch's fork checkpoint and report the trunk's rows up to the fork under
    this branch's key: its stored curve is then the whole curve of its standalone run.
    Returns the folder to restore from (None: no usable fork, train from the first step) and
    the trunk's cumulative training FLOPs at the fork (what the branch's rows repeat: the
    driver counts them once, exactly even when no row falls on the fork step)."""
    from equisweep.train import load_checkpoint

    local = tempfile.mkdtemp(prefix=f"equisweep-fork-{key}-")
    info = forks.fetch(key, local)
    if info is None or int(info["step"]) != fork_step:
        shutil.rmtree(local, ignore_errors=True)
        return None, None
    try:
        state = load_checkpoint(local)
        if not isinstance(state, dict) or int(state.get("step", -1)) != fork_step:
            raise ValueError(f"not the trunk's state at step {fork_step}")
    except Exception as exc:  # noqa: BLE001 - cut short or overwritten: never train from it
        # The branch retrains the trunk's segment itself: the same rows (training is a
        # function of seed and step), at the cost of the shared steps.
        print(f"equisweep: WSD branch {key}: fork checkpoint {forks.path(key)} cannot be "
              f"restored ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
              "); training from the first step", file=sys.stderr, flush=True)
        shutil.rmtree(local, ignore_errors=True)
        return None, None
    for row in state.get("rows") or []:
        if int(row["step"]) <= fork_step:
            tune.report(_clean(row))
    flops = state.get("flops")
    return local, (float(flops) if flops is not None else None)


def _recorded_fork_flops(forks: ForkStore, key: str, fork_step: int) -> float | None:
    """The trunk's FLOPs at the fork, as its trunk recorded them (None: an older fork record,
    or none at this step)."""
    info = forks.info(key) or {}
    flops = info.get("flops")
    if flops is None or int(info.get("step", -1)) != fork_step:
        return None
    return float(flops) if math.isfinite(float(flops)) else None


def _clean(row: dict) -> dict:
    # Tune drops None-valued metrics from some loggers; keep keys, use NaN for floats.
    out = {}
    for k, v in row.items():
        out[k] = math.nan if v is None else v
    out.setdefault("status", "running")
    out.setdefault("error", "")
    out.setdefault("node_id", _node_id())  # the store callback records it beside the host
    return out


def _node_id() -> str:
    global _NODE_ID
    if _NODE_ID is None:
        try:
            import ray

            _NODE_ID = ray.get_runtime_context().get_node_id() or ""
        except Exception:  # noqa: BLE001 - outside a Ray worker (tests): no node id
            _NODE_ID = ""
    return _NODE_ID


_NODE_ID: str | None = None
