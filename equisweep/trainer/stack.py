"""K trials as one stack, framework-free: K trial configs in, each member's metric rows out.

The members of a stack share everything but their hyperparameters (family, size, task,
train set, seed, steps, training settings: `stack_key`), so they see the same batches in the
same order, start from the same initial weights, and differ only in learning rate, betas,
weight decay, warmup and clipping. One forward and one backward (trainer/vmapped.py) and one
optimizer step (StackedAdamW) train all of them; each member's rows, checkpoints and fork
checkpoints are exactly those `iter_trial` yields for the same config alone (a member's
checkpoint restores into `iter_trial` and back). A member whose loss turns non-finite is
recorded `diverged` at that step and leaves the stack; the others train on.

Costs per member, as for a trial alone: `flops` and `eval_flops` count the member's own
model (the stack does K times the work of one and counts it K times, once per member).
`wall_s` is the member's share of the stack's time: each step's wall divided among the
members that trained in it, so the members' wall_s add up to the machine time spent, and
throughput columns (`samples_per_s`, `flops_per_s`) are per member over real time.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from equisweep.task.evaluation import EVAL_BATCH, eval_windows, evaluate_members
from equisweep.task.symmetry import act, sample_task_group
from equisweep.train import Emit, Settings, _fork_emit, honour_cpu_threads, pick_device
from equisweep.trainer.checkpoint import load_checkpoint, save_checkpoint
from equisweep.trainer.data import STREAM_EQUIV, TrialData, cast, generator, to_device
from equisweep.trainer.progress import Progress, metric_row, plain
from equisweep.trainer.vmapped import StackedAdamW, StackedModel


def _shared(config: dict) -> dict:
    """The trial config without what members may differ in: hparams (and `training.warmup`,
    which only mirrors the warmup hparam's default)."""
    out = {k: v for k, v in config.items() if k != "hparams"}
    out["training"] = {k: v for k, v in config["training"].items() if k != "warmup"}
    return out


def stack_key(config: dict) -> str:
    """What the members of one stack share: the whole trial config but its hparams."""
    return json.dumps(_shared(config), sort_keys=True)


def check_stackable(configs: list[dict]) -> None:
    if not configs:
        raise ValueError("a stack needs at least one trial config")
    first = _shared(configs[0])
    for i, config in enumerate(configs[1:], 1):
        other = _shared(config)
        for field in sorted(set(first) | set(other)):
            if first.get(field) != other.get(field):
                raise ValueError(f"stack member {i} differs from member 0 in {field!r}: "
                                 "only hparams may differ within a stack")


def member_losses(pred: torch.Tensor, batch: dict) -> torch.Tensor:
    """`train.masked_mse` of each member: pred (K, B, V, 3) -> (K,)."""
    mask = batch["mask"].unsqueeze(-1).to(pred.dtype)
    dt = torch.promote_types(pred.dtype, torch.float32)
    err = (pred.to(dt) - batch["y"].to(dt)) ** 2 * mask
    return err.flatten(1).sum(1) / (mask.sum() * 3).clamp_min(1)


def _losses(stack, batch: dict, run: Settings, device) -> torch.Tensor:
    """Each member's training loss, under the trial's precision (`training.precision: bf16`
    autocasts the forward, as the lone trainer's `_loss` does; the loss itself is reduced
    in float32 or wider by `member_losses`)."""
    with run.autocast(device):
        return member_losses(stack(batch), batch)


def equivariance_errors(predict, batch: dict, seed: int, index: int) -> list[float]:
    """`train.equivariance_error` of each member (same group draws), in one pass."""
    g = generator(seed, STREAM_EQUIV, index)
    R, t = sample_task_group(batch["x0"].shape[0], generator=g, dtype=torch.float32)
    R, t = R.to(batch["x0"].device), t.to(batch["x0"].device)
    with torch.no_grad():
        pred = predict(batch)
        pred_g = predict(act(batch, R, t))
        R, t = R.to(pred.dtype), t.to(pred.dtype)
        moved = torch.einsum("bij,kbvj->kbvi", R, pred) + t[:, None, :]
        mask = batch["mask"].unsqueeze(-1)
        num = ((pred_g - moved) * mask).flatten(1).norm(dim=1)
        den = ((pred - batch["x1"].to(pred.dtype)) * mask).flatten(1).norm(dim=1)
    return (num / den.clamp_min(1e-12)).tolist()


class _StackMeasure:
    """Evaluation of every live member in one pass per batch; each member's eval FLOPs are
    its own forward passes, as if it were evaluated alone."""

    def __init__(self, stack: StackedModel, run: Settings, data: TrialData, device,
                 progress: list[Progress], dtype):
        self.stack, self.run, self.data, self.device = stack, run, data, device
        self.progress, self.dtype = progress, dtype
        self.alive: list[int] = []

    def _count(self, batch: dict, passes: int = 1) -> None:
        f = passes * self.run.forward_flops(batch)
        for m in self.alive:
            self.progress[m].eval_flops += f

    def _predict(self, batch: dict) -> torch.Tensor:
        with self.run.autocast(self.device):
            return self.stack(cast(batch, self.dtype))

    def val(self, rows: dict[int, dict], done: int) -> None:
        data = self.data
        if not len(data.val_windows):
            return
        self.stack.eval()
        ests = evaluate_members(self._predict, data.val_windows, data.val, EVAL_BATCH,
                                self.device, self._count)
        self._count(data.equiv_batch, passes=2)
        errors = equivariance_errors(self._predict, to_device(data.equiv_batch, self.device),
                                     self.run.seed, done)
        for m, val, err in zip(self.alive, ests, errors):
            rows[m].update(val_loss=val.loss, val_loss_se=val.se, val_windows=val.windows,
                           equivariance_error=err)
        self.stack.train()

    def test(self, rows: dict[int, dict]) -> None:
        self.stack.eval()
        windows = eval_windows(self.data.test)
        if len(windows):
            ests = evaluate_members(self._predict, windows, self.data.test, EVAL_BATCH,
                                    self.device, self._count)
            for m, test in zip(self.alive, ests):
                rows[m].update(test_loss=test.loss, test_loss_se=test.se,
                               test_windows=test.windows)


def iter_stack(
    configs: list[dict],
    *,
    checkpoint_dirs: list[str | Path] | None = None,
    restore_from: list[str | Path] | None = None,
    device: str | None = None,
    data_dir: str | Path | None = None,
    fork_steps: list[list[int]] | None = None,
    dtype: torch.dtype | None = None,
) -> Iterator[tuple[int, Emit]]:
    """Train the trials `configs` (stackable: `check_stackable`) as one stack; yield
    (member index, Emit) with each member's Emits exactly as `iter_trial` yields them.

    `checkpoint_dirs[k]`, `restore_from[k]` and `fork_steps[k]` mean for member k what
    `iter_trial`'s arguments of those names mean; members restore from checkpoints of one
    step (a stack checkpoints all its members together).
    """
    check_stackable(configs)
    k_all = len(configs)
    honour_cpu_threads()
    dev = pick_device(device)
    runs = [Settings.of(c, dev) for c in configs]
    run = runs[0]
    forks = [{int(f) for f in fs if 0 < int(f) < run.steps}
             for fs in (fork_steps or [()] * k_all)]
    if any(forks) and checkpoint_dirs is None:
        raise ValueError("fork_steps need checkpoint_dirs to write the fork checkpoints to")
    data = TrialData.load(configs[0], data_dir=data_dir)

    stack = StackedModel(run.family, run.size, [r.seed for r in runs], dev, dtype)
    opt = StackedAdamW(stack.flat, [(float(r.hp["beta1"]), float(r.hp["beta2"]))
                                    for r in runs],
                       [float(r.hp["weight_decay"]) for r in runs])
    progs = [Progress() for _ in configs]
    if restore_from is not None:
        for k, path in enumerate(restore_from):
            state = load_checkpoint(path)
            stack.load_member(k, state["model"])
            opt.load_member(k, state["optimizer"])
            progs[k] = Progress.restore(state)
        if len({p.step for p in progs}) != 1:
            raise ValueError("stack members restore from checkpoints of different steps: "
                             f"{[p.step for p in progs]}")
    clip = torch.tensor([float(r.hp["grad_clip"]) for r in runs], device=dev,
                        dtype=stack.flat.dtype)
    alive = list(range(k_all))  # the member index of each stack row
    measure = _StackMeasure(stack, run, data, dev, progs, dtype)
    measure.alive = alive

    def state_dict(m: int, done: int, lr: float) -> dict:
        row = alive.index(m)
        return {"model": stack.member_state_dict(row),
                "optimizer": opt.member_state_dict(row, stack, lr),
                **progs[m].state(done, bool(forks[m]))}

    stack.train()
    for p in progs:
        p.restart_window()
    for step in range(progs[0].step, run.steps):
        t0 = time.perf_counter()
        batch = cast(data.batch(step, dev), dtype)
        losses = _losses(stack, batch, run, dev)
        values = losses.detach().tolist()
        bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
        if bad:
            for i in bad:
                m = alive[i]
                row = metric_row(step + 1, run.batch_size, len(data.train), progs[m].flops,
                                 progs[m].wall, values[i], None, runs[m].lr(step))
                row.update(status="diverged",
                           error=f"non-finite training loss at step {step + 1}",
                           eval_flops=progs[m].eval_flops)
                yield m, Emit(row=row, final=True)
            keep = [i for i in range(len(alive)) if i not in bad]
            alive[:] = [alive[i] for i in keep]
            if not alive:
                return
            rows_kept = torch.tensor(keep, device=dev)
            stack.keep(rows_kept)
            opt.keep(rows_kept, stack.flat)
            clip = clip[rows_kept]
            # The survivors' step, computed again without the dead: each is then exactly
            # the step it takes alone.
            losses = _losses(stack, batch, run, dev)
            values = losses.detach().tolist()
        lrs = [runs[m].lr(step) for m in alive]
        opt.zero_grad()
        losses.sum().backward()
        norms = opt.clip(clip).tolist()
        opt.step(lrs)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        share = (time.perf_counter() - t0) / len(alive)
        f = run.step_flops(int(batch["x0"].shape[1]))
        for i, m in enumerate(alive):
            progs[m].add_step(share, f, run.batch_size, values[i], norms[i])

        done = step + 1
        at_eval = run.at_eval(done)
        at_ckpt = checkpoint_dirs is not None and run.at_checkpoint(done)
        if not (at_eval or at_ckpt):
            for i, m in enumerate(alive):
                if done in forks[m]:
                    yield m, _fork_emit(checkpoint_dirs[m], done, state_dict(m, done, lrs[i]),
                                        progs[m].history)
            continue
        rows = {m: progs[m].row(done, run.batch_size, len(data.train), lrs[i])
                for i, m in enumerate(alive)}
        if at_eval:
            measure.val(rows, done)
        ckpt_paths: dict[int, str | None] = {}
        for i, m in enumerate(alive):
            row = rows[m]
            row["eval_flops"] = progs[m].eval_flops
            if forks[m]:
                progs[m].history.append(plain(row))
            if done in forks[m]:
                yield m, _fork_emit(checkpoint_dirs[m], done, state_dict(m, done, lrs[i]),
                                    progs[m].history)
            ckpt_paths[m] = None
            if at_ckpt:
                ckpt = Path(checkpoint_dirs[m]) / f"step-{done:08d}"
                save_checkpoint(ckpt, state_dict(m, done, lrs[i]))
                ckpt_paths[m] = str(ckpt)
        final = done == run.steps
        if final:
            measure.test(rows)
        for m in alive:
            if final:
                rows[m].update(status="finished", eval_flops=progs[m].eval_flops)
            progs[m].restart_window()
            yield m, Emit(row=rows[m], checkpoint_dir=ckpt_paths[m], final=final)


def run_stack(configs: list[dict], **kwargs) -> list[list[dict]]:
    """Run a stack to the end; each member's rows (convenience for scripts and tests)."""
    rows: list[list[dict]] = [[] for _ in configs]
    for m, emit in iter_stack(configs, **kwargs):
        if emit.row is not None:
            rows[m].append(emit.row)
    return rows
