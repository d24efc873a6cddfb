"""Fault injection for the reliability tests, from outside the product: crash a trial for
real, once per trial key. equisweep itself knows nothing of it.

Set EQUISWEEP_FAULT in the driver's environment, e.g. `exit@120` (os._exit at step 120),
`raise@120`, `kill@120` (SIGKILL to its own process), `nan@120` (a non-finite loss), `oom@120`
(a real allocator failure), `mark@120` (only leave the marker), or `gate@20`: report the
step-20 row (and its checkpoint), then block until the file EQUISWEEP_FAULT_GATE exists, so a
test can act (remove a node, kill the driver) while it knows every gated trial is still
running, without racing the training. A lone trial's fault fires at its first reported row
of a step >= N; a stack's crash and gate at its first reported step >= N, its `nan` at step
N exactly, inside the stack, so the stack's own masking runs. EQUISWEEP_FAULT_DIR holds one
marker per key, so each fault fires on the first attempt only and the retry can show that
nothing was lost. EQUISWEEP_FAULT_KEYS (comma-separated key prefixes) limits it to some
trials.

How it gets there (this folder is on PYTHONPATH for the whole test session, tests/conftest.py,
so every process the tests start imports its `sitecustomize`):
- In a driver (the pytest process, a `python -m equisweep.cli run` subprocess with
  EQUISWEEP_FAULT set) `install()` wraps, as each module is imported,
  `sweep.searcher.trial_payload`, which then adds the settings to each trial's Tune config
  under PAYLOAD_KEY when EQUISWEEP_FAULT is set at that moment, and `sweep.trainable.run`,
  the function the driver hands to Tune, with this module's `run`.
- Tune pickles that `run` by reference (this module, importable in every worker through the
  inherited PYTHONPATH), so a Ray worker started before the variables were set (the
  session's shared Ray) still injects: the settings travel in the trial's config.
- In the worker, `run` wraps the trial's training iterator for the length of the trial
  (`trainable.iter_trial`, or `trainer.stack.iter_stack` and the stack's `_losses`) and calls
  the product's own trainable. A config without PAYLOAD_KEY runs untouched.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import importlib.abc
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

ENV = ("EQUISWEEP_FAULT", "EQUISWEEP_FAULT_DIR", "EQUISWEEP_FAULT_KEYS", "EQUISWEEP_FAULT_GATE")
# Not a key equisweep reads: only this module's `run` looks for it in a trial's config.
PAYLOAD_KEY = "injected_fault"
# A gate nobody opens is a broken test: fail the trial loudly rather than hang the suite.
GATE_TIMEOUT_S = 600.0
CRASHES = ("exit", "kill", "raise", "oom")


def settings_from_environment() -> dict | None:
    """The fault settings to ship with each trial, if EQUISWEEP_FAULT is set."""
    if not os.environ.get("EQUISWEEP_FAULT"):
        return None
    return {name: os.environ.get(name, "") for name in ENV}


def planned_fault(key: str, settings: dict | None) -> tuple[str, int, str] | None:
    """(kind, step, marker dir) if the trial `key` should fail in this attempt."""
    if not settings or not settings.get("EQUISWEEP_FAULT"):
        return None
    keys = [k for k in settings.get("EQUISWEEP_FAULT_KEYS", "").split(",") if k]
    if keys and not any(key.startswith(k) for k in keys):
        return None
    marker_dir = settings.get("EQUISWEEP_FAULT_DIR", "")
    if marker_dir and (Path(marker_dir) / key).exists():
        return None
    kind, _, step = settings["EQUISWEEP_FAULT"].partition("@")
    return kind, int(step), marker_dir


def fire(kind: str, key: str, marker_dir: str) -> None:
    """Inject the fault `kind`; leave a marker first, since some kinds never return."""
    if marker_dir:
        Path(marker_dir).mkdir(parents=True, exist_ok=True)
        (Path(marker_dir) / key).touch()
    if kind == "mark":
        return
    if kind == "exit":
        os._exit(17)
    if kind == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if kind == "raise":
        raise RuntimeError(f"injected fault in trial {key}")
    if kind == "oom":
        # A real allocator failure, not a synthetic MemoryError: the trainable must
        # recognise what torch actually raises when memory runs out.
        import torch

        torch.empty(1 << 62, dtype=torch.uint8)


def wait_at_gate(key: str, settings: dict | None) -> None:
    """Block until the gate file exists (see `gate@STEP` above)."""
    gate = (settings or {}).get("EQUISWEEP_FAULT_GATE", "")
    if not gate:
        raise RuntimeError("gate fault without EQUISWEEP_FAULT_GATE")
    deadline = time.monotonic() + GATE_TIMEOUT_S
    while not Path(gate).exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"trial {key}: gate {gate} not opened in {GATE_TIMEOUT_S:.0f} s")
        time.sleep(0.1)


# --- the trainable Tune runs ---------------------------------------------------------------

_PRODUCT_RUN = None  # `sweep.trainable.run` as equisweep defines it, once install() wrapped it


def run(config: dict, prior: str | None = None, stored: dict | None = None) -> None:
    """`sweep.trainable.run` with the faults its config carries (named `run` like it: Tune
    names trials after the trainable)."""
    from equisweep.sweep import trainable

    product_run = _PRODUCT_RUN or trainable.run
    if product_run is run:  # pragma: no cover - install() always keeps the original
        raise RuntimeError("fault_injector.run lost equisweep's trainable")
    members = config["stack"] if config.get("stack") else [config]
    if not any(m.get(PAYLOAD_KEY) for m in members):
        return product_run(config, prior=prior, stored=stored)
    if config.get("stack"):
        from equisweep.trainer import stack

        inject = _patched(stack, "iter_stack", _stack_faults(stack.iter_stack, members))
    else:
        inject = _patched(trainable, "iter_trial",
                          _trial_faults(trainable.iter_trial, config["key"],
                                        config[PAYLOAD_KEY]))
    with inject:
        return product_run(config, prior=prior, stored=stored)


@contextlib.contextmanager
def _patched(owner, name: str, value):
    old = getattr(owner, name)
    setattr(owner, name, value)
    try:
        yield
    finally:
        setattr(owner, name, old)


def _trial_faults(iter_trial, key: str, settings: dict):
    """`iter_trial` with the trial's planned fault at its first row of a step >= N."""

    @functools.wraps(iter_trial)
    def faulty(*args, **kwargs):
        emits = iter_trial(*args, **kwargs)
        fault = planned_fault(key, settings)
        if fault is None:
            yield from emits
            return
        kind, at, marker_dir = fault
        for emit in emits:
            if emit.row is None or emit.row["step"] < at:
                yield emit
                continue
            if kind == "nan":
                # The row goes out as the trainer's own divergence row would, and ends the
                # trial: nothing after it, no checkpoint.
                fire("mark", key, marker_dir)
                if emit.checkpoint_dir:
                    shutil.rmtree(emit.checkpoint_dir, ignore_errors=True)
                row = dict(emit.row, train_loss=math.nan, status="diverged",
                           error=f"non-finite training loss at step {emit.row['step']}")
                emits.close()
                yield dataclasses.replace(emit, row=row, checkpoint_dir=None, final=True)
                return
            if kind == "gate":
                fire("mark", key, marker_dir)
                yield emit  # the trainable reports the row (and checkpoint) before we resume
                wait_at_gate(key, settings)
            else:
                fire(kind, key, marker_dir)  # before the row is reported: it never is
                yield emit
            yield from emits
            return

    return faulty


def _stack_faults(iter_stack, members: list[dict]):
    """`iter_stack` with each member's planned fault. The stack is one process: a crash at
    its first step >= N is every member's (each planned crash is spent, so the retry shows
    that nothing was lost); a gate holds the stack once that step's rows are all reported."""

    @functools.wraps(iter_stack)
    def faulty(configs, *args, **kwargs):
        # iter_stack trains the members that have not ended, in `members` order.
        keys = [next(m["key"] for m in members if m["trial"] == c) for c in configs]
        settings = {m["key"]: m.get(PAYLOAD_KEY) for m in members}
        planned = {pos: f for pos, k in enumerate(keys)
                   if (f := planned_fault(k, settings[k]))}
        nan_at = {pos: f[1] for pos, f in planned.items() if f[0] == "nan"}
        alive = set(range(len(configs)))
        step, reported, gated = None, 0, None
        with poisoned_losses(nan_at):
            for pos, emit in iter_stack(configs, *args, **kwargs):
                row = emit.row
                if row is None:  # a WSD fork checkpoint
                    yield pos, emit
                    continue
                if row.get("status") == "diverged":
                    alive.discard(pos)
                    fault = planned.pop(pos, None)
                    if fault and fault[0] == "nan":
                        fire("mark", keys[pos], fault[2])
                    yield pos, emit
                    continue
                if row["step"] != step:  # the first row of a step: nothing of it reported
                    step, reported = row["step"], 0
                    crash = [p for p, f in planned.items() if f[0] in CRASHES and step >= f[1]]
                    if crash:
                        kind, _, marker_dir = planned[crash[0]]
                        for p in crash:
                            fire("mark", keys[p], planned.pop(p)[2])
                        fire(kind, keys[crash[0]], marker_dir)
                    gate = [p for p, f in planned.items() if f[0] == "gate" and step >= f[1]]
                    for p in gate:
                        fire("mark", keys[p], planned.pop(p)[2])
                    if gate:
                        gated = keys[gate[0]]
                reported += 1
                yield pos, emit
                # The stack trainable reports a step once it holds every live member's row,
                # before it asks for the next one: here, that step is in Tune's hands.
                if gated and reported == len(alive):
                    wait_at_gate(gated, settings[gated])
                    gated = None

    return faulty


@contextlib.contextmanager
def poisoned_losses(nan_at: dict[int, int]):
    """Make member k's training loss non-finite at step nan_at[k] inside `trainer.stack`
    (k: its index in the configs `iter_stack` was given), so the stack's own masking runs.
    Also for the in-process reference runs of the tests."""
    if not nan_at:
        yield
        return
    import torch

    from equisweep.trainer import stack
    from equisweep.trainer.data import TrialData
    from equisweep.trainer.vmapped import StackedModel

    # The step comes from the training batch asked for just before the losses; the stack's
    # rows from `keep`, which drops the members that ended.
    state = {"step": None, "rows": None}
    batch, keep, losses = TrialData.batch, StackedModel.keep, stack._losses

    def batch_at(self, step, *args, **kwargs):
        state["step"] = int(step)
        return batch(self, step, *args, **kwargs)

    def keep_rows(self, rows):
        state["rows"] = [state["rows"][int(i)] for i in rows]
        return keep(self, rows)

    def poisoned(model, *args, **kwargs):
        out = losses(model, *args, **kwargs)
        if state["rows"] is None:
            state["rows"] = list(range(out.shape[0]))
        done = state["step"] + 1
        if done in nan_at.values():
            poison = [math.nan if nan_at.get(m) == done else 0.0 for m in state["rows"]]
            out = out + torch.tensor(poison, dtype=out.dtype, device=out.device)
        return out

    with _patched(TrialData, "batch", batch_at), _patched(StackedModel, "keep", keep_rows), \
            _patched(stack, "_losses", poisoned):
        yield


# --- installation --------------------------------------------------------------------------


def _payload_with_fault(trial_payload):
    @functools.wraps(trial_payload)
    def with_fault(*args, **kwargs):
        payload = trial_payload(*args, **kwargs)
        settings = settings_from_environment()
        if settings:
            payload[PAYLOAD_KEY] = settings
        return payload

    return with_fault


def _wrap_searcher(module) -> None:
    if not hasattr(module.trial_payload, "__wrapped__"):
        module.trial_payload = _payload_with_fault(module.trial_payload)


def _wrap_trainable(module) -> None:
    global _PRODUCT_RUN
    if module.run is not run:
        _PRODUCT_RUN = module.run
        module.run = run


_PATCHES = {"equisweep.sweep.searcher": _wrap_searcher,
            "equisweep.sweep.trainable": _wrap_trainable}


class _PatchOnImport(importlib.abc.MetaPathFinder):
    """Patches a module right after it is first executed, so installing imports nothing of
    equisweep (or Ray) in processes that never use it."""

    def find_spec(self, name, path, target=None):
        patch = _PATCHES.get(name)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            patch(module)

        loader.exec_module = exec_and_patch
        return spec


def install() -> None:
    """Wrap the product's seams in this process, now for modules already imported, else as
    they are imported. Idempotent."""
    for name, patch in _PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    if not any(isinstance(f, _PatchOnImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _PatchOnImport())
