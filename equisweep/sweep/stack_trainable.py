"""The Tune trainable of a stack (`sweep.stacking`): K trials trained as one by
`trainer.stack.iter_stack`, each member reported as the trial it is.

Every row goes out with `member` (its index in `config["stack"]`), so the driver's callbacks
file it under that member's key, attempt and status. All live members checkpoint at one
step, reported as one Tune checkpoint: a folder per member (`m<i>/`, the lone trainer's
format, tagged with the member's key as a lone trial's is, so `prior_checkpoints` finds
it on resume) and `stack.json` naming the members that already ended (diverged): a retry
restores the others and never trains those again. The rows of a checkpoint step are
reported together, the checkpoint with the last, so the store holds every member's row up
to a step before that step can be restored from (`callback.StoreCallback.on_checkpoint`).
Stacked WSD trunks publish each member's fork checkpoints as a lone trunk does, before the
rows of that step.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

from ray import tune

from equisweep.sweep import prior_checkpoints
from equisweep.sweep.forks import ForkStore

STATE = "stack.json"


def run_stack(config: dict, prior: str | None = None, stored: dict | None = None) -> None:
    from equisweep.sweep.trainable import _clean, _is_oom
    from equisweep.trainer.stack import iter_stack

    payloads = config["stack"]
    keys = [p["key"] for p in payloads]
    print(f"equisweep stack {config.get('label', '')} keys {' '.join(keys)}", flush=True)
    restore, ended, scratch = _restore(keys, prior, stored or {})
    live = [i for i in range(len(keys)) if keys[i] not in ended]
    open_ = set(live)  # members that have not ended in this attempt
    # WSD trunks: each member publishes a fork checkpoint for each of its branches.
    fork_keys: dict[int, dict[int, list[str]]] = {i: {} for i in live}
    for i in live:
        for step, branch in (payloads[i].get("wsd") or {}).get("forks") or []:
            fork_keys[i].setdefault(int(step), []).append(branch)
    store = next((p["fork_store"] for p in payloads if p.get("fork_store")), None)
    forks = ForkStore(*store) if store else None
    workdir = tempfile.mkdtemp(prefix="equisweep-stack-")
    last_step = None
    try:
        if not live:
            return
        emits = iter_stack(
            [payloads[i]["trial"] for i in live],
            checkpoint_dirs=[os.path.join(workdir, f"m{i}") for i in live],
            restore_from=[restore[i] for i in live] if restore else None,
            data_dir=config.get("data_dir"),
            fork_steps=[sorted(fork_keys[i]) for i in live],
        )
        pending: list[tuple[int, dict, str | None]] = []
        for pos, emit in emits:
            i = live[pos]
            if emit.fork_step is not None:
                for branch in fork_keys[i].get(emit.fork_step, []):
                    forks.put(branch, emit.checkpoint_dir, trunk=keys[i], step=emit.fork_step,
                              flops=emit.fork_flops)
                shutil.rmtree(emit.checkpoint_dir, ignore_errors=True)
                continue
            row = dict(emit.row, member=i)
            if row.get("status") == "diverged":
                ended[keys[i]] = "diverged"
                open_.discard(i)
                tune.report(_clean(row))
                continue
            pending.append((i, row, emit.checkpoint_dir))
            if len(pending) == len(open_):  # every live member's row of this step
                last_step = row["step"]
                _report_step(pending, keys, ended, workdir)
                pending = []
    except Exception as exc:
        if not _is_oom(exc):
            raise
        at = f" after step {last_step}" if last_step else ""
        for i in sorted(open_):
            tune.report(
                {
                    "member": i,
                    "status": "failed",
                    "error": f"out of memory{at}: {type(exc).__name__}: {exc}",
                }
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        for path in scratch:
            shutil.rmtree(path, ignore_errors=True)


def _report_step(pending, keys, ended, workdir) -> None:
    """Report one step's rows of every live member; its checkpoint with the last row."""
    from equisweep.sweep.trainable import _clean

    step = int(pending[0][1]["step"])
    folder = None
    if all(d for _, _, d in pending):
        folder = os.path.join(workdir, f"checkpoint-{step:08d}")
        os.makedirs(folder)
        for i, _, d in pending:
            shutil.move(d, os.path.join(folder, f"m{i}"))
            prior_checkpoints.tag(os.path.join(folder, f"m{i}"), keys[i], step)
        with open(os.path.join(folder, STATE), "w") as f:
            json.dump(
                {"step": step, "members": {str(i): keys[i] for i, _, _ in pending}, "ended": ended},
                f,
            )
    for n, (_, row, _) in enumerate(pending):
        if folder and n == len(pending) - 1:
            tune.report(_clean(row), checkpoint=tune.Checkpoint.from_directory(folder))
        else:
            tune.report(_clean(row))
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def _restore(keys: list[str], prior: str | None, stored: dict):
    """({member index: checkpoint folder} or None, {key: status} of members that ended,
    folders to delete afterwards). Tune's own checkpoint of this stack first (a retry);
    else, on a rebuilt run, each member's newest checkpoint at one common step no later
    than every member's last stored row (`prior_checkpoints.fetch_latest`)."""
    ckpt = tune.get_checkpoint()
    if ckpt is not None:
        folder = ckpt.to_directory()
        with open(os.path.join(folder, STATE)) as f:
            state = json.load(f)
        ended = {str(k): str(v) for k, v in dict(state.get("ended") or {}).items()}
        members = {int(i): str(k) for i, k in dict(state["members"]).items()}
        live = [i for i in range(len(keys)) if keys[i] not in ended]
        if all(members.get(i) == keys[i] for i in live):
            chosen = {i: os.path.join(folder, f"m{i}") for i in live}
            bad = {i: why for i, p in chosen.items() if (why := prior_checkpoints.unusable(p))}
            if not bad:
                return chosen, ended, [folder]
            older = _older(keys, live, chosen, bad, ckpt.path, prior, stored)
            return older, ended, [folder, *(older or {}).values()]
        return None, ended, [folder]  # not this stack's checkpoint: train from the start
    if not prior:
        return None, {}, []
    steps = [stored.get(k) for k in keys]
    bound = None if None in steps else min(steps)
    while bound is not None:
        got = [prior_checkpoints.fetch_latest(prior, k, bound) for k in keys]
        if None in got:
            _drop(got)
            return None, {}, []
        at = [_step_of(path) for path in got]
        if len(set(at)) == 1:
            return dict(enumerate(got)), {}, got
        _drop(got)
        bound = min(at)
    return None, {}, []


def _older(keys, live, chosen, bad, where: str, prior, stored) -> dict | None:
    """A retry whose stack checkpoint holds a member's `trial.pt` it cannot load (cut short
    or overwritten in Tune's storage): name the file in the worker's log and continue every
    live member from its newest older verified checkpoint at one common step, else from the
    first step. Rows up to any older checkpoint are stored, so the retry re-reports the same
    rows as a later attempt (as a lone trial's retry does, `trainable._verified`)."""
    import sys

    steps = [prior_checkpoints.tagged_step(chosen[i]) for i in live if i not in bad]
    bound = (min(steps) - 1) if steps and None not in steps else \
        min((stored.get(keys[i]) for i in live if stored.get(keys[i]) is not None),
            default=None)
    found = None
    while prior and bound is not None:
        got = [prior_checkpoints.fetch_latest(prior, keys[i], bound) for i in live]
        if None in got:
            _drop(got)
            break
        at = [_step_of(path) for path in got]
        if len(set(at)) == 1:
            found = dict(zip(live, got))
            break
        _drop(got)
        bound = min(at)
    instead = "from scratch" if found is None else "from an older checkpoint"
    for i, why in bad.items():
        print(f"equisweep: stack member {keys[i]}: checkpoint {where}/m{i}/"
              f"{prior_checkpoints.CHECKPOINT} cannot be restored ({why}); continuing the "
              f"stack {instead}", file=sys.stderr, flush=True)
    return found


def _step_of(path: str) -> int:
    from equisweep.train import load_checkpoint

    return int(load_checkpoint(path)["step"])


def _drop(paths) -> None:
    for path in paths:
        if path:
            shutil.rmtree(path, ignore_errors=True)
