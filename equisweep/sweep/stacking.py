"""Which planned trials train together as one stack (`training.stack`), and what a stacked
Tune trial's config looks like. No Ray here: `validate` shows the same stacks `run` makes.

A stack's members share everything but their hyperparameters (`trainer.stack.stack_key`):
the learning-rate (or other hparam) candidates of one grid cell. They become one Tune
trial whose config lists the members (`{"stack": [payload, ...]}`, each payload exactly
what the member's lone trial would have had), yet every member stays a trial: its own key,
rows, status, attempts and checkpoints (`sweep.trainable.run_stack`, `sweep.callback`).

- `off`: every trial alone (today's behaviour, the default).
- `N`: a cell's trials N at a time, in plan order.
- `auto`: as many of a cell's trials as fit the memory one Tune trial gets
  (`preflight.trial_memory`: its share of the RAM or GPU of the machine planning the
  sweep) at `AUTO_MARGIN` times `preflight.trial_memory_lower_bound` per member.

Under `schedule: wsd` the trunks of a group stack (the group's samples, all of the longest
length, start together; each member publishes its own fork checkpoints); branches and
forked slots train alone: each starts when its own trunk's fork exists. An Optuna slot
whose warmup is searched does not stack under WSD (its warmup steps, part of the training
settings a stack shares, are known only once drawn).
"""

from __future__ import annotations

from equisweep.spec import trunks

# The lower bound counts fp32 weights, grads, Adam state and one activation per token,
# width unit and layer; real activations are several of those (attention scores, MLP
# hidden layers, the stacked copies vmap makes). A margin keeps `auto` clear of swapping.
AUTO_MARGIN = 8.0


def members(config: dict) -> list[dict]:
    """The trial payloads a Tune trial's config stands for: a stack's members, or itself."""
    return list(config.get("stack") or [config])


def cap(spec, cell, memory: float | None = None) -> int:
    """Most members per stack for `cell` (`off` gives 1)."""
    mode = spec.stack
    if mode == "off":
        return 1
    if isinstance(mode, int):
        return mode
    from equisweep.sweep.preflight import trial_memory, trial_memory_lower_bound

    if memory is None:
        memory = trial_memory(spec)[0]
    per_member = AUTO_MARGIN * trial_memory_lower_bound(spec, cell)
    return max(1, int(memory // per_member))


def stacks(spec, slots, memory: float | None = None) -> list[list[int]]:
    """The planned slots (`sweep.plan.Slot`) cut into stacks: lists of slot indices, each
    list members of one cell in plan order, the lists in the order of their first slot.
    `memory` (tests): the bytes one Tune trial may use, instead of this machine's share."""
    if spec.stack == "off":
        return [[i] for i in range(len(slots))]
    from equisweep.trainer.stack import stack_key

    cells = {c.key: c for c in spec.cells()}
    groups: dict[str, list[int]] = {}
    for i, slot in enumerate(slots):
        if not _stackable(spec, slot):
            groups[f"alone {i}"] = [i]
            continue
        # An Optuna slot's hparams are drawn later; its stack key does not depend on them.
        config = spec.cell_trial(cells[slot.cell_key], slot.hparams).to_dict()
        groups.setdefault(stack_key(config), []).append(i)
    out = []
    for idx in groups.values():
        k = cap(spec, cells[slots[idx[0]].cell_key], memory)
        out += [idx[j : j + k] for j in range(0, len(idx), k)]
    return sorted(out, key=lambda s: s[0])


def _stackable(spec, slot) -> bool:
    if not trunks.is_wsd(spec):
        return True
    if slot.role != "trunk":
        return False  # a branch starts from its own trunk's fork, when that exists
    searched = spec.search.params.get("warmup")
    return slot.hparams is not None or searched is None or searched.kind == "fixed"


def describe(spec, slots, memory: float | None = None) -> dict:
    """What `validate` prints: the number of Tune trials, and how many stacks of each K."""
    groups = stacks(spec, slots, memory)
    sizes: dict[int, int] = {}
    for g in groups:
        sizes[len(g)] = sizes.get(len(g), 0) + 1
    return {
        "mode": spec.stack,
        "trials": len(slots),
        "tune_trials": len(groups),
        "stacks": {str(k): n for k, n in sorted(sizes.items(), reverse=True)},
        "wsd_trunks_only": trunks.is_wsd(spec) and spec.stack != "off",
    }


def stack_payload(payloads: list[dict]) -> dict:
    """The Tune config of a stack of member payloads (`searcher.trial_payload` each)."""
    first = payloads[0]
    return {
        "stack": payloads,
        "data_dir": first.get("data_dir"),
        # Named after its first member (whose label ends in its key's first 8 digits): the
        # Tune trial folder and the worker's log line say which trials run there.
        "label": f"stack{len(payloads)}-{first['label']}",
    }
