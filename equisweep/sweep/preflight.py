"""Refuse, before Ray starts, a sweep this machine or cluster cannot run.

- Embedded Ray: a trial asking for more CPUs or GPUs than the machine has would wait in
  Tune's queue forever, without a word. Refused with the numbers.
- Memory: a size whose weights, gradients, Adam state and activations cannot fit what one
  trial can have (its share of the machine's RAM, or of its GPU's memory) is refused with
  the estimate. The estimate is a lower bound (fp32: 16 bytes per parameter; activations
  of 4 bytes per token, width unit and layer, for each sample of a batch), so a refusal is
  never a guess: a trial above it cannot run.
- A joined cluster may autoscale: when no node offers a trial's resources, say what is
  pending and wait at most `pending_timeout_s()` (EQUISWEEP_PENDING_TIMEOUT_S, default
  600 s) for a node to appear, then give up with exit 2.
"""

from __future__ import annotations

import os
import sys
import time

from equisweep.errors import UserError

DEFAULT_PENDING_TIMEOUT_S = 600.0


def machine_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def machine_gpus() -> list[int]:
    """Memory in bytes of each GPU this process can see (what the embedded Ray gets)."""
    import torch

    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_properties(i).total_memory
            for i in range(torch.cuda.device_count())]


def machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def check_local(spec, cells, *, cpus: int | None = None, gpus: list[int] | None = None,
                memory: int | None = None) -> None:
    """UserError unless every trial of `cells` fits the embedded Ray of this machine."""
    cpus = machine_cpus() if cpus is None else cpus
    gpus = machine_gpus() if gpus is None else gpus
    memory = machine_memory() if memory is None else memory
    cpu, gpu = float(spec.resources.get("cpu", 1)), float(spec.resources.get("gpu", 0))
    if cpu > cpus:
        raise UserError(f"resources.cpu: each trial asks for {cpu:g} CPUs; the embedded Ray "
                        f"on this machine has {cpus} (lower it, or join a cluster with "
                        "--address)")
    if gpu > len(gpus):
        raise UserError(f"resources.gpu: each trial asks for {gpu:g} GPUs; the embedded Ray "
                        f"on this machine has {len(gpus)} (set gpu: 0, or join a cluster "
                        "with --address)")
    per_trial, where = trial_memory(spec, cpus=cpus, gpus=gpus, memory=memory)
    for cell in cells:
        need = trial_memory_lower_bound(spec, cell)
        if need > per_trial:
            raise UserError(
                f"families.{cell.family}: size {dict(cell.size)} needs at least "
                f"{need / 2**30:.1f} GiB per trial ({cell.n_params:,} parameters with "
                f"gradients and Adam state, plus activations); a trial here has "
                f"{per_trial / 2**30:.1f} GiB ({where})")


def trial_memory(spec, *, cpus: int | None = None, gpus: list[int] | None = None,
                 memory: int | None = None) -> tuple[float, str]:
    """The memory one trial (or one stack of trials) can have on this machine, in bytes,
    and where that number comes from: its share of the GPU it asks for, or of the RAM
    shared by the trials that run at once."""
    cpu, gpu = float(spec.resources.get("cpu", 1)), float(spec.resources.get("gpu", 0))
    if gpu > 0:
        gpus = machine_gpus() if gpus is None else gpus
        if gpus:
            return (min(gpus) * min(gpu, 1.0),
                    f"{gpu:g} of a {min(gpus) / 2**30:.1f} GiB GPU")
    cpus = machine_cpus() if cpus is None else cpus
    memory = machine_memory() if memory is None else memory
    at_once = max(1, min(spec.max_concurrent, int(cpus // cpu)))
    return (memory / at_once,
            f"1/{at_once} of this machine's {memory / 2**30:.1f} GiB ({at_once} at once)")


def trial_memory_lower_bound(spec, cell) -> float:
    batch = int(spec.training["batch_size"])
    tokens = int(spec.task.max_tokens())
    width = int(cell.size.get("width", 1))
    depth = int(cell.size.get("depth", 1))
    return 16.0 * cell.n_params + 4.0 * batch * tokens * width * depth


def pending_timeout_s() -> float:
    raw = os.environ.get("EQUISWEEP_PENDING_TIMEOUT_S", "")
    try:
        return float(raw) if raw else DEFAULT_PENDING_TIMEOUT_S
    except ValueError:
        raise UserError(f"EQUISWEEP_PENDING_TIMEOUT_S={raw!r} is not a number of seconds") \
            from None


def wait_for_a_node(spec, *, timeout_s: float | None = None, poll_s: float = 5.0) -> None:
    """On a joined cluster: return once some alive node offers one trial's CPUs and GPUs;
    until then say what is pending; UserError after `timeout_s`."""
    import ray

    cpu, gpu = float(spec.resources.get("cpu", 1)), float(spec.resources.get("gpu", 0))
    timeout_s = pending_timeout_s() if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s
    said = False
    while True:
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
        if any(r.get("CPU", 0) >= cpu and r.get("GPU", 0) >= gpu for r in nodes):
            return
        best = max(nodes, key=lambda r: (r.get("GPU", 0), r.get("CPU", 0)), default={})
        have = f"the largest has {best.get('CPU', 0):g} CPUs and {best.get('GPU', 0):g} GPUs"
        if time.monotonic() >= deadline:
            raise UserError(f"resources: no node of the cluster offers {cpu:g} CPUs and "
                            f"{gpu:g} GPUs per trial after {timeout_s:g} s ({have}; "
                            "EQUISWEEP_PENDING_TIMEOUT_S sets the wait)")
        if not said:
            print(f"equisweep: pending: each trial needs a node with {cpu:g} CPUs and "
                  f"{gpu:g} GPUs; none yet ({have}); waiting up to {timeout_s:g} s for the "
                  "autoscaler", file=sys.stderr, flush=True)
            said = True
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
