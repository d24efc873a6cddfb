"""One trial, framework-free: a trial config in, a stream of metric rows out.

`iter_trial` is a generator so the same code runs under Ray Tune (the trainable reports each
row), from a plain script, or from a test. It never imports Ray. Everything that makes a run
reproducible (model init, batch order, windows, augmentation draws) is derived from the
trial seed and the step number, so a run restored from a checkpoint continues exactly as the
uninterrupted run would have.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from equisweep.models import build_model, count_flops
from equisweep.schedule import lr_factor, training_lr_factor  # noqa: F401 (re-exported)
from equisweep.spec.hparams import HPARAM_DEFAULTS
from equisweep.store.schema import REPORTED_METRICS
from equisweep.task import RigidBodyDataset, TaskConfig, collate, ensure_dataset
from equisweep.task.evaluation import EVAL_BATCH, eval_windows, evaluate
from equisweep.task.symmetry import act, sample_task_group

CHECKPOINT_FILE = "trial.pt"
# Stream tags so independent random streams never share a seed.
_STREAM_ORDER, _STREAM_AUGMENT, _STREAM_EQUIV = 1, 2, 4


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


def _generator(seed: int, stream: int, index: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, stream, index]).generate_state(1)[0]))
    return g


class WindowSampler:
    """Maps a global sample position to a (trajectory, window) pair, epoch by epoch.

    One epoch visits every training trajectory once, each at a window drawn afresh, in an
    order drawn afresh; both come from (seed, epoch) so any step can be regenerated.
    """

    def __init__(self, dataset: RigidBodyDataset, seed: int):
        self.dataset = dataset
        self.seed = seed
        self.n = len(dataset)
        self._epoch = -1
        self._order: np.ndarray | None = None
        self._starts: np.ndarray | None = None

    def _load_epoch(self, epoch: int) -> None:
        if epoch == self._epoch:
            return
        g = _generator(self.seed, _STREAM_ORDER, epoch)
        self._order = torch.randperm(self.n, generator=g).numpy()
        self._starts = torch.randint(
            0, self.dataset.windows, (self.n,), generator=g
        ).numpy()
        self._epoch = epoch

    def _draws(self, step: int, batch_size: int):
        """(trajectory, window start) of each sample of batch `step`."""
        for pos in range(step * batch_size, (step + 1) * batch_size):
            epoch, i = divmod(pos, self.n)
            self._load_epoch(epoch)
            yield int(self._order[i]), int(self._starts[i])

    def batch_tokens(self, steps: int, batch_size: int) -> np.ndarray:
        """The padded length (largest scene) of each of batches 0..steps-1, unbuilt: what
        `batch(step, batch_size)["x0"].shape[1]` will be."""
        per_scene = self.dataset.scene_tokens()
        order = np.empty(steps * batch_size, dtype=np.int64)
        for epoch in range((order.size + self.n - 1) // self.n):
            self._load_epoch(epoch)
            part = order[epoch * self.n:(epoch + 1) * self.n]
            part[:] = self._order[:part.size]
        return per_scene[order].reshape(steps, batch_size).max(axis=1)

    def batch(self, step: int, batch_size: int) -> dict:
        return collate([self.dataset.sample(i, start) for i, start in
                        self._draws(step, batch_size)])


def batch_tokens(config: dict, path, steps: int | None = None) -> np.ndarray:
    """The padded token length of each training batch 0..steps-1 (default: the config's
    steps) of `config` on the dataset at `path`; it depends only on the train set, the seed
    and the batch size, so trials that share those share it."""
    task = TaskConfig.from_dict(config["task"])
    train_ds = RigidBodyDataset(path, split="train", limit=int(config["train_trajectories"]),
                                seed=int(config["seed"]), delta=task.delta)
    sampler = WindowSampler(train_ds, int(config["seed"]))
    steps = int(config["steps"]) if steps is None else int(steps)
    return sampler.batch_tokens(steps, int(config["training"]["batch_size"]))


def training_flops(config: dict, path, start: int = 0, tokens: np.ndarray | None = None) -> float:
    """The training FLOPs `train` counts for steps start..steps of `config` on the dataset at
    `path`: each step at its batch's padded length, exactly as the trainer adds them up.
    The spec's `flops_per_step` counts every step at the largest possible scene, a bound.
    `tokens`: `batch_tokens(config, path)` (or a longer run's), when already computed."""
    tokens = batch_tokens(config, path) if tokens is None else tokens
    lengths, counts = np.unique(tokens[int(start):int(config["steps"])], return_counts=True)
    batch_size = int(config["training"]["batch_size"])
    return float(sum(int(n) * count_flops(config["family"], config["size"], tokens=int(v),
                                          batch_size=batch_size)
                     for v, n in zip(lengths, counts)))


def _equivariance_batch(dataset: RigidBodyDataset, batch_size: int) -> dict:
    """The fixed batch equivariance is measured on: the middle window of the first
    `batch_size` val trajectories (the same for every trial of a dataset)."""
    n = min(batch_size, len(dataset))
    return collate([dataset.sample(i, dataset.windows // 2) for i in range(n)])


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def masked_mse(pred: torch.Tensor, batch: dict) -> torch.Tensor:
    mask = batch["mask"].unsqueeze(-1).to(pred.dtype)
    err = (pred.float() - batch["y"].float()) ** 2 * mask
    return err.sum() / (mask.sum() * 3).clamp_min(1)


def equivariance_error(model, batch: dict, seed: int, index: int) -> float:
    """Relative violation |f(g·x) − g·f(x)| / |f(x) − x1| under task-group elements.

    Measured on the task's own symmetries (rotations about up, vertical reflections,
    horizontal shifts): the group a baseline has to learn from data or augmentation.
    """
    g = _generator(seed, _STREAM_EQUIV, index)
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


def _save_checkpoint(path: Path, state: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f".{CHECKPOINT_FILE}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path / CHECKPOINT_FILE)


def load_checkpoint(path: str | Path) -> dict:
    # weights_only: a checkpoint is data, never code (it may come from shared storage).
    return torch.load(Path(path) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)


def iter_trial(
    config: dict,
    *,
    checkpoint_dir: str | Path | None = None,
    restore_from: str | Path | None = None,
    device: str | None = None,
    data_dir: str | Path | None = None,
    progress: bool = False,
    fork_steps: tuple[int, ...] | list[int] = (),
) -> Iterator[Emit]:
    """Train one trial; yield a metric row at every eval (and checkpoint) step.

    `checkpoint_dir`: where checkpoints are written (a fresh folder per checkpoint is
    `checkpoint_dir/step-XXXXXXXX`). `restore_from`: a folder written earlier, to continue.
    `fork_steps` (a WSD trunk; needs `checkpoint_dir`): also write `checkpoint_dir/fork-XXXXXXXX`
    after each of these steps, without emitting a row there, so the trunk's curve stays that of
    its own standalone run; its checkpoints then carry the rows emitted so far, which a branch
    restored from a fork re-reports as the start of its own curve.
    The last Emit has `final=True` and carries `test_loss` (or `status='diverged'`).
    """
    honour_cpu_threads()
    dev = pick_device(device)
    task = TaskConfig.from_dict(config["task"])
    training = config["training"]
    hp = {**HPARAM_DEFAULTS, **config["hparams"]}  # the one set of defaults (spec's)
    seed = int(config["seed"])
    steps = int(config["steps"])
    batch_size = int(training["batch_size"])
    eval_every = int(training["eval_every"])
    ckpt_every = int(training["checkpoint_every"])
    bf16 = training.get("precision", "fp32") == "bf16" and dev.type == "cuda"

    path = ensure_dataset(task, cache_dir=data_dir, progress=progress)
    train_ds = RigidBodyDataset(path, split="train", limit=int(config["train_trajectories"]),
                                seed=seed, delta=task.delta)
    val_ds = RigidBodyDataset(path, split="val", seed=seed, delta=task.delta)
    test_ds = RigidBodyDataset(path, split="test", seed=seed, delta=task.delta)
    sampler = WindowSampler(train_ds, seed)
    # Fixed per dataset, never per trial: every trial is measured on the same windows.
    val_windows = eval_windows(val_ds)
    equiv_batch = _equivariance_batch(val_ds, batch_size) if len(val_ds) else None

    torch.manual_seed(seed)
    model = build_model(config["family"], config["size"]).to(dev)
    opt = torch.optim.AdamW(
        model.parameters(),
        lr=float(hp["lr"]),
        betas=(float(hp["beta1"]), float(hp["beta2"])),
        weight_decay=float(hp["weight_decay"]),
    )
    warmup = float(hp["warmup"])
    forks = {int(f) for f in fork_steps if 0 < int(f) < steps}
    if forks and checkpoint_dir is None:
        raise ValueError("fork_steps need a checkpoint_dir to write the fork checkpoints to")
    clip = float(hp["grad_clip"])
    augment = bool(config.get("augment", False))
    flops_cache: dict[int, int] = {}

    def step_flops(tokens: int) -> int:
        if tokens not in flops_cache:
            flops_cache[tokens] = count_flops(
                config["family"], config["size"], tokens=tokens, batch_size=batch_size
            )
        return flops_cache[tokens]

    def autocast():
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16)

    eval_flops = 0.0  # forward passes only (1/3 of a training step), never in `flops`

    def count_eval(batch: dict, passes: int = 1) -> None:
        nonlocal eval_flops
        b, v = int(batch["x0"].shape[0]), int(batch["x0"].shape[1])
        eval_flops += passes * count_flops(config["family"], config["size"], tokens=v,
                                           batch_size=b) / 3.0

    def predict(batch: dict) -> torch.Tensor:
        with autocast():
            return model(batch)

    start, flops, wall = 0, 0.0, 0.0
    loss_sum, loss_n = 0.0, 0
    if restore_from is not None:
        state = load_checkpoint(restore_from)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start, flops, wall = int(state["step"]), float(state["flops"]), float(state["wall_s"])
        eval_flops = float(state.get("eval_flops", 0.0))
        loss_sum, loss_n = float(state["loss_sum"]), int(state["loss_n"])
        history = list(state.get("rows") or [])
    else:
        history = []
    keep_rows = bool(forks)  # only a trunk needs its past rows in its checkpoints

    def state_dict(done: int) -> dict:
        return {
            "model": model.state_dict(), "optimizer": opt.state_dict(), "step": done,
            "flops": flops, "wall_s": wall, "loss_sum": loss_sum, "loss_n": loss_n,
            "rows": [dict(r) for r in history] if keep_rows else [],
            "eval_flops": eval_flops,
        }

    last_grad_norm = float("nan")
    window_t0, window_samples, window_flops = time.perf_counter(), 0, 0.0
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, initial=start, desc=f"{config['family']} trial", unit="step")
    model.train()
    for step in range(start, steps):
        t0 = time.perf_counter()
        batch = sampler.batch(step, batch_size)
        if augment:
            R, t = sample_task_group(
                batch_size, generator=_generator(seed, _STREAM_AUGMENT, step), dtype=torch.float32
            )
            batch = act(batch, R, t)
        batch = _to(batch, dev)
        for group in opt.param_groups:
            group["lr"] = float(hp["lr"]) * training_lr_factor(step, steps, training, warmup)
        with autocast():
            loss = masked_mse(model(batch), batch)
        if not torch.isfinite(loss):
            row = _row(step + 1, batch_size, train_ds, flops, wall, float(loss.detach()), None, opt)
            row.update(status="diverged", error=f"non-finite training loss at step {step + 1}",
                       eval_flops=eval_flops)
            yield Emit(row=row, final=True)
            return
        opt.zero_grad(set_to_none=True)
        loss.backward()
        last_grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), clip))
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        dt = time.perf_counter() - t0
        wall += dt
        f = step_flops(int(batch["x0"].shape[1]))
        flops += f
        window_samples += batch_size
        window_flops += f
        loss_sum += float(loss.detach())
        loss_n += 1
        if bar is not None:
            bar.update(1)

        done = step + 1
        at_eval = done % eval_every == 0 or done == steps
        at_ckpt = checkpoint_dir is not None and (done % ckpt_every == 0 or done == steps)
        if not (at_eval or at_ckpt):
            if done in forks:
                yield _fork_emit(checkpoint_dir, done, state_dict(done), history)
            continue
        row = _row(done, batch_size, train_ds, flops, wall, loss_sum / max(loss_n, 1),
                   last_grad_norm, opt)
        elapsed = time.perf_counter() - window_t0
        row["samples_per_s"] = window_samples / max(elapsed, 1e-9)
        row["flops_per_s"] = window_flops / max(elapsed, 1e-9)
        loss_sum, loss_n = 0.0, 0
        if at_eval and len(val_windows):
            model.eval()
            val = evaluate(predict, val_windows, val_ds, EVAL_BATCH, dev, count_eval)
            row.update(val_loss=val.loss, val_loss_se=val.se, val_windows=val.windows)
            count_eval(equiv_batch, passes=2)
            row["equivariance_error"] = equivariance_error(model, _to(equiv_batch, dev), seed,
                                                           done)
            model.train()
        row["eval_flops"] = eval_flops
        if keep_rows:
            history.append(_plain(row))
        if done in forks:
            # Before the row: a trunk that dies once this step's checkpoint is reported must
            # already have published the fork, as its retry resumes past this step.
            yield _fork_emit(checkpoint_dir, done, state_dict(done), history)
        ckpt_path = None
        if at_ckpt:
            ckpt = Path(checkpoint_dir) / f"step-{done:08d}"
            _save_checkpoint(ckpt, state_dict(done))
            ckpt_path = str(ckpt)
        final = done == steps
        if final:
            model.eval()
            test_windows = eval_windows(test_ds)
            if len(test_windows):
                test = evaluate(predict, test_windows, test_ds, EVAL_BATCH, dev, count_eval)
                row.update(test_loss=test.loss, test_loss_se=test.se, test_windows=test.windows)
            row.update(status="finished", eval_flops=eval_flops)
        window_t0, window_samples, window_flops = time.perf_counter(), 0, 0.0
        yield Emit(row=row, checkpoint_dir=ckpt_path, final=final)
    if bar is not None:
        bar.close()


def _plain(row: dict) -> dict:
    """A row as plain Python values: checkpoints load with weights_only, which refuses numpy
    scalars."""
    return {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}


def _fork_emit(checkpoint_dir, done: int, state: dict, history: list) -> Emit:
    path = Path(checkpoint_dir) / f"fork-{done:08d}"
    _save_checkpoint(path, state)
    return Emit(row=None, checkpoint_dir=str(path), fork_step=done,
                fork_rows=[dict(r) for r in history])


def _row(step, batch_size, train_ds, flops, wall, train_loss, grad_norm, opt) -> dict:
    """A metric row: every column the store's schema reports (unmeasured ones None)."""
    samples = step * batch_size
    row = dict.fromkeys(REPORTED_METRICS)
    row.update(
        step=step,
        samples=samples,
        epochs=samples / max(len(train_ds), 1),
        flops=float(flops),
        wall_s=float(wall),
        train_loss=float(train_loss),
        lr=float(opt.param_groups[0]["lr"]),
        grad_norm=None if grad_norm is None else float(grad_norm),
    )
    return row


def run_trial(config: dict, **kwargs) -> list[dict]:
    """Run a trial to the end and return all its rows (convenience for scripts and tests)."""
    return [e.row for e in iter_trial(config, **kwargs) if e.row is not None]
