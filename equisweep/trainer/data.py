"""What a trial trains and is measured on: its datasets, the batch of every step (order,
windows and augmentation drawn from the trial seed and the step number, so any step can be
regenerated after a restore), and the fixed val / equivariance sets of its dataset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from equisweep.models import count_flops
from equisweep.task import RigidBodyDataset, TaskConfig, collate, ensure_dataset
from equisweep.task.evaluation import WindowSet, eval_windows
from equisweep.task.symmetry import act, sample_task_group

# Stream tags so independent random streams never share a seed.
STREAM_ORDER, STREAM_AUGMENT, STREAM_EQUIV = 1, 2, 4


def generator(seed: int, stream: int, index: int) -> torch.Generator:
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
        g = generator(self.seed, STREAM_ORDER, epoch)
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
        idx, starts = zip(*self._draws(step, batch_size))
        return self.dataset.batch(idx, starts)


def train_split(config: dict, path) -> RigidBodyDataset:
    task = TaskConfig.from_dict(config["task"])
    return RigidBodyDataset(path, split="train", limit=int(config["train_trajectories"]),
                            seed=int(config["seed"]), delta=task.delta)


def batch_tokens(config: dict, path, steps: int | None = None) -> np.ndarray:
    """The padded token length of each training batch 0..steps-1 (default: the config's
    steps) of `config` on the dataset at `path`; it depends only on the train set, the seed
    and the batch size, so trials that share those share it."""
    sampler = WindowSampler(train_split(config, path), int(config["seed"]))
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


def equivariance_batch(dataset: RigidBodyDataset, batch_size: int) -> dict:
    """The fixed batch equivariance is measured on: the middle window of the first
    `batch_size` val trajectories (the same for every trial of a dataset)."""
    n = min(batch_size, len(dataset))
    return collate([dataset.sample(i, dataset.windows // 2) for i in range(n)])


def to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def cast(batch: dict, dtype: torch.dtype | None) -> dict:
    """The batch with its floating tensors in `dtype` (None: unchanged). Tests train in
    float64 to compare trainers without float32 rounding drowning the comparison."""
    if dtype is None:
        return batch
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in batch.items()}


@dataclass
class TrialData:
    """A trial's splits and the sets it is measured on. Val and equivariance sets are fixed
    per dataset, never per trial: every trial is measured on the same windows."""

    train: RigidBodyDataset
    val: RigidBodyDataset
    test: RigidBodyDataset
    sampler: WindowSampler
    val_windows: WindowSet
    equiv_batch: dict | None
    seed: int
    batch_size: int
    augment: bool

    @classmethod
    def load(cls, config: dict, *, data_dir=None, progress: bool = False) -> TrialData:
        task = TaskConfig.from_dict(config["task"])
        seed, batch_size = int(config["seed"]), int(config["training"]["batch_size"])
        path = ensure_dataset(task, cache_dir=data_dir, progress=progress)
        train = train_split(config, path)
        val = RigidBodyDataset(path, split="val", seed=seed, delta=task.delta)
        test = RigidBodyDataset(path, split="test", seed=seed, delta=task.delta)
        return cls(train, val, test, WindowSampler(train, seed), eval_windows(val),
                   equivariance_batch(val, batch_size) if len(val) else None, seed,
                   batch_size, bool(config.get("augment", False)))

    def batch(self, step: int, device: torch.device) -> dict:
        """Training batch `step` on `device`, augmented by its own group draw if asked."""
        batch = self.sampler.batch(step, self.batch_size)
        if self.augment:
            R, t = sample_task_group(self.batch_size,
                                     generator=generator(self.seed, STREAM_AUGMENT, step),
                                     dtype=torch.float32)
            batch = act(batch, R, t)
        return to_device(batch, device)
