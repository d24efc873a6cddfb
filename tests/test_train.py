"""The trainer without Ray: rows, exact resume from a checkpoint, divergence, threads."""

from __future__ import annotations

import math

import pytest
import torch

from equisweep import train
from equisweep.spec import parse_spec
from equisweep.spec.hparams import HPARAM_DEFAULTS
from equisweep.store.schema import REPORTED_METRICS
from tests.sweep.conftest import tiny_sweep_dict


@pytest.fixture(scope="module")
def trial_configs():
    spec = parse_spec(tiny_sweep_dict(training={
        "batch_size": 4, "eval_every": 5, "checkpoint_every": 10}))
    return {c.family: spec.cell_trial(c, {"lr": 3e-3}).to_dict() for c in spec.cells()}


@pytest.mark.parametrize("family", ["gatr", "transformer"])
def test_resume_from_checkpoint_reproduces_the_uninterrupted_run(trial_configs, family,
                                                                   tmp_path):
    config = trial_configs[family]
    full = [e for e in train.iter_trial(config, checkpoint_dir=tmp_path / "a")]
    assert [e.row["step"] for e in full] == [5, 10, 15, 20]
    assert full[-1].final and full[-1].row["status"] == "finished"
    assert full[-1].row["test_loss"] > 0
    assert full[1].checkpoint_dir is not None  # step 10

    resumed = list(train.iter_trial(config, checkpoint_dir=tmp_path / "b",
                                    restore_from=full[1].checkpoint_dir))
    assert [e.row["step"] for e in resumed] == [15, 20]
    for a, b in zip(full[2:], resumed):
        for col in ("train_loss", "val_loss", "test_loss", "flops", "samples", "epochs", "lr"):
            assert a.row[col] == b.row[col], col


def test_every_checkpoint_resumes_on_the_fused_optimizer(trial_configs, tmp_path):
    """The lone trainer's AdamW is fused and takes its settings from the config, also after
    restoring a stack member's checkpoint (whose optimizer state has no `fused` and betas
    rounded to float32): its next checkpoint records them."""
    from equisweep.trainer.stack import run_stack

    config = trial_configs["transformer"]
    run_stack([config, config], checkpoint_dirs=[tmp_path / "s0", tmp_path / "s1"])
    resumed = [e for e in train.iter_trial(config, checkpoint_dir=tmp_path / "t",
                                           restore_from=tmp_path / "s1" / "step-00000010")
               if e.checkpoint_dir]
    assert [e.row["step"] for e in resumed] == [20]
    groups = train.load_checkpoint(resumed[0].checkpoint_dir)["optimizer"]["param_groups"]
    hp = {**HPARAM_DEFAULTS, **config["hparams"]}
    assert groups and all(g["fused"] is True for g in groups)
    assert all(g["betas"] == (hp["beta1"], hp["beta2"]) for g in groups)


def test_rows_carry_cumulative_samples_epochs_flops(trial_configs):
    rows = train.run_trial(trial_configs["transformer"])
    assert [r["samples"] for r in rows] == [20, 40, 60, 80]
    assert rows[-1]["epochs"] == pytest.approx(80 / 8)
    flops = [r["flops"] for r in rows]
    assert all(b > a > 0 for a, b in zip(flops, flops[1:]))
    assert all(r["samples_per_s"] > 0 and r["flops_per_s"] > 0 for r in rows)
    # The baseline is not equivariant: the violation is measured and visibly non-zero.
    assert all(r["equivariance_error"] > 1e-3 for r in rows)
    # Every row has exactly the store's metric columns (plus the trial's end state).
    assert all(set(r) - {"status", "error"} == set(REPORTED_METRICS) for r in rows)


def test_non_finite_loss_ends_the_trial_as_diverged(trial_configs, monkeypatch):
    real = train.masked_mse
    calls = {"n": 0}

    def flaky(pred, batch):
        loss = real(pred, batch)
        if not torch.is_grad_enabled():  # evaluation passes
            return loss
        calls["n"] += 1
        return loss * math.nan if calls["n"] == 7 else loss

    monkeypatch.setattr(train, "masked_mse", flaky)
    rows = train.run_trial(trial_configs["gatr"])
    assert rows[-1]["status"] == "diverged"
    assert "non-finite" in rows[-1]["error"]
    assert [r["step"] for r in rows] == [5, 7]


def test_honours_the_cpu_threads_granted(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    try:
        assert train.honour_cpu_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_lr_schedule_warms_up_then_decays():
    f = [train.lr_factor(s, 100, 0.1, "cosine") for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert all(b <= a for a, b in zip(f[9:], f[10:]))
    assert f[-1] < 0.01
    assert train.lr_factor(50, 100, 0.0, "constant") == 1.0


def test_evaluation_on_fixed_windows_with_standard_errors_and_its_own_flops(trial_configs):
    """Val/test losses carry clustered SEs and window counts; evaluation compute is counted
    in `eval_flops` (forward = 1/3 of a training step), never in the training `flops`;
    windows do not depend on the trial."""
    from equisweep.models import count_flops
    from equisweep.task import RigidBodyDataset, TaskConfig, ensure_dataset
    from equisweep.task.evaluation import EVAL_BATCH, eval_windows

    config = trial_configs["gatr"]
    fam, size, bs = config["family"], config["size"], config["training"]["batch_size"]
    rows = train.run_trial(config)
    final = rows[-1]
    task = TaskConfig.from_dict(config["task"])
    path = ensure_dataset(task)
    split = {s: RigidBodyDataset(path, split=s, delta=task.delta) for s in ("val", "test")}
    test_w, val_w = eval_windows(split["test"]), eval_windows(split["val"])
    assert final["test_windows"] == len(test_w) >= len(split["test"])
    assert 0 < final["test_loss_se"] < final["test_loss"]
    assert all(r["val_loss_se"] > 0 and r["val_windows"] == len(val_w) for r in rows)

    def forward(windows, ds):
        return sum(count_flops(fam, size, tokens=int(b["x0"].shape[1]),
                               batch_size=int(b["x0"].shape[0])) / 3
                   for b, _ in windows.batches(ds, EVAL_BATCH))

    equiv = train._equivariance_batch(split["val"], bs)
    per_eval = forward(val_w, split["val"]) + 2 * count_flops(
        fam, size, tokens=int(equiv["x0"].shape[1]), batch_size=bs) / 3
    expected = len(rows) * per_eval + forward(test_w, split["test"])
    assert final["eval_flops"] == pytest.approx(expected, rel=1e-9)
    # Training FLOPs are exactly the training steps' (padded batches, as the trainer saw them).
    train_ds = RigidBodyDataset(path, split="train", limit=config["train_trajectories"],
                                seed=config["seed"], delta=task.delta)
    sampler = train.WindowSampler(train_ds, config["seed"])
    steps = sum(count_flops(fam, size, tokens=int(sampler.batch(s, bs)["x0"].shape[1]),
                            batch_size=bs) for s in range(config["steps"]))
    assert final["flops"] == pytest.approx(steps, rel=1e-12)
    other = dict(config, seed=config["seed"] + 1, hparams=dict(config["hparams"], lr=1e-2))
    again = train.run_trial(other)[-1]
    assert (again["test_windows"], again["val_windows"]) == (final["test_windows"],
                                                             final["val_windows"])


def test_wsd_branch_from_a_trunk_fork_is_its_standalone_run(tmp_path):
    from tests.sweep.conftest import tiny_sweep_dict

    d = tiny_sweep_dict(grid={"steps": [20, 40], "train_trajectories": [8], "seed": [0]},
                        search={"method": "grid", "params": {"lr": 3e-3}},
                        training={**tiny_sweep_dict()["training"], "eval_every": 5,
                                  "checkpoint_every": 10, "schedule": "wsd", "cooldown": 0.3})
    d["families"] = {"transformer": {"sizes": [{"width": 8, "depth": 1}]}}
    spec = parse_spec(d)
    short, long = sorted(spec.trials(), key=lambda t: t.steps)
    fork = 14  # 20 - round(0.3 * 20): not a row step, so the fork writes no row
    trunk = list(train.iter_trial(long.to_dict(), checkpoint_dir=tmp_path / "t",
                                  fork_steps=[fork]))
    forks = [e for e in trunk if e.fork_step is not None]
    assert [e.fork_step for e in forks] == [fork] and forks[0].row is None
    # Writing forks leaves the trunk's own curve that of its standalone run.
    trunk_rows = [e.row for e in trunk if e.row is not None]
    plain = train.run_trial(long.to_dict(), checkpoint_dir=tmp_path / "u")
    assert [r["step"] for r in trunk_rows] == [r["step"] for r in plain]
    for a, b in zip(trunk_rows, plain):
        assert (a["train_loss"], a["val_loss"], a["lr"]) == (b["train_loss"], b["val_loss"],
                                                             b["lr"])
    # The fork carries the trunk's rows up to it; the branch continues from its state.
    assert [r["step"] for r in forks[0].fork_rows] == [5, 10]
    # ... and the trunk's training FLOPs up to it, exactly (no row falls on the fork step)
    from equisweep.task import TaskConfig, ensure_dataset

    path = ensure_dataset(TaskConfig.from_dict(long.to_dict()["task"]))
    assert forks[0].fork_flops == train.training_flops(dict(long.to_dict(), steps=fork), path)
    branch = train.run_trial(short.to_dict(), restore_from=forks[0].checkpoint_dir)
    alone = train.run_trial(short.to_dict(), checkpoint_dir=tmp_path / "s")
    got = forks[0].fork_rows + branch
    assert [r["step"] for r in got] == [r["step"] for r in alone] == [5, 10, 15, 20]
    for a, b in zip(got, alone):
        for col in ("train_loss", "val_loss", "test_loss", "flops", "samples", "lr"):
            assert a[col] == b[col], (a["step"], col)


@pytest.mark.parametrize("train_trajectories,batch_size", [(3, 4), (8, 4), (5, 3)])
def test_batch_lengths_are_the_built_batches_and_training_flops_count_them(
        trial_configs, train_trajectories, batch_size):
    """`batch_tokens` (what the driver plans with) is each built batch's padded length, across
    epoch boundaries too, and `training_flops` from any start step adds exactly those steps."""
    from equisweep.models import count_flops
    from equisweep.task import RigidBodyDataset, TaskConfig, ensure_dataset

    config = dict(trial_configs["transformer"], train_trajectories=train_trajectories,
                  steps=13, training=dict(trial_configs["transformer"]["training"],
                                          batch_size=batch_size))
    task = TaskConfig.from_dict(config["task"])
    path = ensure_dataset(task)
    sampler = train.WindowSampler(RigidBodyDataset(path, split="train", limit=train_trajectories,
                                                   seed=config["seed"], delta=task.delta),
                                  config["seed"])
    built = [int(sampler.batch(s, batch_size)["x0"].shape[1]) for s in range(13)]
    lengths = train.batch_tokens(config, path)
    assert lengths.tolist() == built
    assert train.batch_tokens(config, path, steps=5).tolist() == built[:5]
    for start in (0, 4, 12):
        expected = sum(count_flops(config["family"], config["size"], tokens=v,
                                   batch_size=batch_size) for v in built[start:])
        assert train.training_flops(config, path, start) == expected
        assert train.training_flops(config, path, start, tokens=lengths) == expected
