"""One trial, framework-free: a trial config in, a stream of metric rows out.

`iter_trial` is a generator so the same code runs under Ray Tune (the trainable reports each
row), from a plain script, or from a test. It never imports Ray. Everything that makes a run
reproducible (model init, batch order, windows, augmentation draws) is derived from the
trial seed and the step number, so a run restored from a checkpoint continues exactly as the
uninterrupted run would have.

The loop below reads as its pieces: the data of each step (trainer/data.py), one optimizer
step (`_loss`, `_update`), evaluation (`_Measure`), checkpoints (trainer/checkpoint.py) and
rows (trainer/progress.py).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from equisweep.models import build_model, count_flops
from equisweep.schedule import lr_factor, training_lr_factor  # noqa: F401 (re-exported)
from equisweep.spec.hparams import HPARAM_DEFAULTS
from equisweep.task.evaluation import EVAL_BATCH, eval_windows, evaluate
from equisweep.task.symmetry import act, sample_task_group
from equisweep.trainer.checkpoint import (  # noqa: F401 (re-exported)
    CHECKPOINT_FILE,
    load_checkpoint,
    save_checkpoint,
)
from equisweep.trainer.data import (  # noqa: F401 (re-exported)
    STREAM_EQUIV,
    TrialData,
    WindowSampler,
    batch_tokens,
    cast,
    equivariance_batch,
    generator,
    to_device,
    training_flops,
)
from equisweep.trainer.progress import Progress, metric_row, plain

# The names this module had before its pieces moved out (scripts and tests use them).
_save_checkpoint, _equivariance_batch, _generator, _to = (
    save_checkpoint, equivariance_batch, generator, to_device)


class TrialDiverged(RuntimeError):
    """The training loss became non-finite."""


@dataclass
class Emit:
    """What the generator yields: a metric row and, when one was just written, a checkpoint.

    A WSD trunk also yields fork checkpoints (`fork_step` set, `row` None): the state at a
    shorter length's fork step, with every row emitted up to it in `fork_rows`.
    """

    row: dict | None
    checkpoint_dir: str | None = None
    final: bool = False
    fork_step: int | None = None
    fork_rows: list | None = None
    fork_flops: float | None = None  # the trunk's cumulative FLOPs at `fork_step`, exactly


def honour_cpu_threads() -> int:
    """Use the CPU share the scheduler granted (Ray sets OMP_NUM_THREADS per trial)."""
    n = os.environ.get("OMP_NUM_THREADS")
    if n and n.isdigit() and int(n) > 0:
        torch.set_num_threads(int(n))
    return torch.get_num_threads()


def pick_device(requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    # Ray exposes only the granted GPU(s) through CUDA_VISIBLE_DEVICES, fractional too.
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def masked_mse(pred: torch.Tensor, batch: dict) -> torch.Tensor:
    """Mean squared error per coordinate over real tokens, in float32 (float64 if pred is)."""
    mask = batch["mask"].unsqueeze(-1).to(pred.dtype)
    dt = torch.promote_types(pred.dtype, torch.float32)
    err = (pred.to(dt) - batch["y"].to(dt)) ** 2 * mask
    return err.sum() / (mask.sum() * 3).clamp_min(1)


def equivariance_error(model, batch: dict, seed: int, index: int) -> float:
    """Relative violation |f(g·x) − g·f(x)| / |f(x) − x1| under task-group elements.

    Measured on the task's own symmetries (rotations about up, vertical reflections,
    horizontal shifts): the group a baseline has to learn from data or augmentation.
    """
    g = generator(seed, STREAM_EQUIV, index)
    b = batch["x0"].shape[0]
    R, t = sample_task_group(b, generator=g, dtype=torch.float32)
    R, t = R.to(batch["x0"].device), t.to(batch["x0"].device)
    with torch.no_grad():
        pred = model(batch)
        pred_g = model(act(batch, R, t))
        moved = torch.einsum("bij,bvj->bvi", R, pred) + t[:, None, :]
        mask = batch["mask"].unsqueeze(-1)
        num = ((pred_g - moved) * mask).norm()
        den = ((pred - batch["x1"]) * mask).norm().clamp_min(1e-12)
    return float(num / den)


@dataclass
class Settings:
    """A trial config's training settings, read once (hparam defaults: the spec's)."""

    family: str
    size: dict
    training: dict
    hp: dict
    seed: int
    steps: int
    batch_size: int
    eval_every: int
    ckpt_every: int
    bf16: bool
    _flops: dict = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, config: dict, device: torch.device) -> Settings:
        training = config["training"]
        return cls(config["family"], config["size"], training,
                   {**HPARAM_DEFAULTS, **config["hparams"]}, int(config["seed"]),
                   int(config["steps"]), int(training["batch_size"]),
                   int(training["eval_every"]), int(training["checkpoint_every"]),
                   training.get("precision", "fp32") == "bf16" and device.type == "cuda")

    def lr(self, step: int) -> float:
        """The scheduled learning rate of the update at `step`."""
        return float(self.hp["lr"]) * training_lr_factor(step, self.steps, self.training,
                                                         float(self.hp["warmup"]))

    def step_flops(self, tokens: int) -> int:
        """Training FLOPs of one step at `tokens` padded tokens (the trainer's count)."""
        if tokens not in self._flops:
            self._flops[tokens] = count_flops(self.family, self.size, tokens=tokens,
                                              batch_size=self.batch_size)
        return self._flops[tokens]

    def forward_flops(self, batch: dict) -> float:
        """Forward FLOPs of `batch`: 1/3 of a training step on it."""
        b, v = int(batch["x0"].shape[0]), int(batch["x0"].shape[1])
        return count_flops(self.family, self.size, tokens=v, batch_size=b) / 3.0

    def autocast(self, device: torch.device):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                              enabled=self.bf16)

    def optimizer(self, params) -> torch.optim.Optimizer:
        hp = self.hp
        # fused: one kernel over all parameters instead of ~10 small ops per tensor, which
        # small models pay per step (measured 1.05-1.15x per step on CPU, bench/BENCHMARKS.md);
        # the same AdamW arithmetic. A checkpoint from the loop version loads into it.
        return torch.optim.AdamW(params, lr=float(hp["lr"]),
                                 betas=(float(hp["beta1"]), float(hp["beta2"])),
                                 weight_decay=float(hp["weight_decay"]), fused=True)

    def at_eval(self, done: int) -> bool:
        return done % self.eval_every == 0 or done == self.steps

    def at_checkpoint(self, done: int) -> bool:
        return done % self.ckpt_every == 0 or done == self.steps


def _loss(model, batch: dict, run: Settings, device: torch.device) -> torch.Tensor:
    with run.autocast(device):
        return masked_mse(model(batch), batch)


def _update(model, opt, loss: torch.Tensor, clip: float) -> torch.Tensor:
    """Backward, clip, optimizer step; the gradient norm before clipping (a 0-d tensor: read
    it after the step, so the host does not wait for the device in the middle)."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return grad_norm.detach()


class _Measure:
    """Evaluation of one trial's model on the fixed val/test windows and the equivariance
    batch; its forward FLOPs go to `progress.eval_flops`, never to `flops`."""

    def __init__(self, model, run: Settings, data: TrialData, device, progress: Progress,
                 dtype: torch.dtype | None = None):
        self.model, self.run, self.data, self.device = model, run, data, device
        self.progress, self.dtype = progress, dtype

    def _count(self, batch: dict, passes: int = 1) -> None:
        self.progress.eval_flops += passes * self.run.forward_flops(batch)

    def _predict(self, batch: dict) -> torch.Tensor:
        with self.run.autocast(self.device):
            return self.model(cast(batch, self.dtype))

    def _predict_float(self, batch: dict) -> torch.Tensor:
        return self._predict(batch).float()

    def val(self, row: dict, done: int) -> None:
        data = self.data
        if not len(data.val_windows):
            return
        self.model.eval()
        val = evaluate(self._predict, data.val_windows, data.val, EVAL_BATCH, self.device,
                       self._count)
        row.update(val_loss=val.loss, val_loss_se=val.se, val_windows=val.windows)
        self._count(data.equiv_batch, passes=2)
        row["equivariance_error"] = equivariance_error(
            self.model if self.dtype is None else self._predict_float,
            to_device(data.equiv_batch, self.device), self.run.seed, done)
        self.model.train()

    def test(self, row: dict) -> None:
        self.model.eval()
        windows = eval_windows(self.data.test)
        if len(windows):
            test = evaluate(self._predict, windows, self.data.test, EVAL_BATCH, self.device,
                            self._count)
            row.update(test_loss=test.loss, test_loss_se=test.se, test_windows=test.windows)


def iter_trial(
    config: dict,
    *,
    checkpoint_dir: str | Path | None = None,
    restore_from: str | Path | None = None,
    device: str | None = None,
    data_dir: str | Path | None = None,
    progress: bool = False,
    fork_steps: tuple[int, ...] | list[int] = (),
    dtype: torch.dtype | None = None,
) -> Iterator[Emit]:
    """Train one trial; yield a metric row at every eval (and checkpoint) step.

    `checkpoint_dir`: where checkpoints are written (a fresh folder per checkpoint is
    `checkpoint_dir/step-XXXXXXXX`). `restore_from`: a folder written earlier, to continue.
    `fork_steps` (a WSD trunk; needs `checkpoint_dir`): also write `checkpoint_dir/fork-XXXXXXXX`
    after each of these steps, without emitting a row there, so the trunk's curve stays that of
    its own standalone run; its checkpoints then carry the rows emitted so far, which a branch
    restored from a fork re-reports as the start of its own curve.
    The last Emit has `final=True` and carries `test_loss` (or `status='diverged'`).
    `dtype` (tests): train and evaluate the model in this floating type (float64).
    """
    honour_cpu_threads()
    dev = pick_device(device)
    run = Settings.of(config, dev)
    forks = {int(f) for f in fork_steps if 0 < int(f) < run.steps}
    if forks and checkpoint_dir is None:
        raise ValueError("fork_steps need a checkpoint_dir to write the fork checkpoints to")
    data = TrialData.load(config, data_dir=data_dir, progress=progress)

    torch.manual_seed(run.seed)
    model = build_model(run.family, run.size).to(dev)
    if dtype is not None:
        model = model.to(dtype)
    opt = run.optimizer(model.parameters())
    prog = Progress()
    if restore_from is not None:
        state = load_checkpoint(restore_from)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        # The moments come from the checkpoint, the settings from this trial's config: a
        # stack member's optimizer state carries betas rounded to its dtype and no `fused`.
        for group in opt.param_groups:
            group.update({k: v for k, v in opt.defaults.items() if k != "params"})
        prog = Progress.restore(state)
    keep_rows = bool(forks)  # only a trunk needs its past rows in its checkpoints
    measure = _Measure(model, run, data, dev, prog, dtype)

    def state_dict(done: int) -> dict:
        return {"model": model.state_dict(), "optimizer": opt.state_dict(),
                **prog.state(done, keep_rows)}

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=run.steps, initial=prog.step, desc=f"{run.family} trial", unit="step")
    model.train()
    prog.restart_window()
    for step in range(prog.step, run.steps):
        t0 = time.perf_counter()
        batch = cast(data.batch(step, dev), dtype)
        lr = run.lr(step)
        for group in opt.param_groups:
            group["lr"] = lr
        loss = _loss(model, batch, run, dev)
        grad_norm = _update(model, opt, loss, float(run.hp["grad_clip"]))
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        # Read back once the step is done, not between forward and backward (on a GPU that
        # wait would stall the queue every step). A non-finite loss ends the trial here, its
        # step uncounted, exactly as if it had been caught before the update.
        value = float(loss.detach())
        if not math.isfinite(value):
            row = metric_row(step + 1, run.batch_size, len(data.train), prog.flops, prog.wall,
                             value, None, lr)
            row.update(status="diverged", error=f"non-finite training loss at step {step + 1}",
                       eval_flops=prog.eval_flops)
            yield Emit(row=row, final=True)
            return
        prog.add_step(time.perf_counter() - t0, run.step_flops(int(batch["x0"].shape[1])),
                      run.batch_size, value, float(grad_norm))
        if bar is not None:
            bar.update(1)

        done = step + 1
        at_eval = run.at_eval(done)
        at_ckpt = checkpoint_dir is not None and run.at_checkpoint(done)
        if not (at_eval or at_ckpt):
            if done in forks:
                yield _fork_emit(checkpoint_dir, done, state_dict(done), prog.history)
            continue
        row = prog.row(done, run.batch_size, len(data.train), lr)
        if at_eval:
            measure.val(row, done)
        row["eval_flops"] = prog.eval_flops
        if keep_rows:
            prog.history.append(plain(row))
        if done in forks:
            # Before the row: a trunk that dies once this step's checkpoint is reported must
            # already have published the fork, as its retry resumes past this step.
            yield _fork_emit(checkpoint_dir, done, state_dict(done), prog.history)
        ckpt_path = None
        if at_ckpt:
            ckpt = Path(checkpoint_dir) / f"step-{done:08d}"
            save_checkpoint(ckpt, state_dict(done))
            ckpt_path = str(ckpt)
        final = done == run.steps
        if final:
            measure.test(row)
            row.update(status="finished", eval_flops=prog.eval_flops)
        prog.restart_window()
        yield Emit(row=row, checkpoint_dir=ckpt_path, final=final)
    if bar is not None:
        bar.close()


def _fork_emit(checkpoint_dir, done: int, state: dict, history: list) -> Emit:
    path = Path(checkpoint_dir) / f"fork-{done:08d}"
    save_checkpoint(path, state)
    flops = state.get("flops")
    return Emit(row=None, checkpoint_dir=str(path), fork_step=done,
                fork_rows=[dict(r) for r in history],
                fork_flops=float(flops) if flops is not None else None)


def run_trial(config: dict, **kwargs) -> list[dict]:
    """Run a trial to the end and return all its rows (convenience for scripts and tests)."""
    return [e.row for e in iter_trial(config, **kwargs) if e.row is not None]
