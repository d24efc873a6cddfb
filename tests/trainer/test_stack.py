"""Stacked trials (equisweep/trainer/stack.py): each member of a stack is the same trial
trained alone — curve, checkpoints, forks — and a member that diverges leaves its stack
without stopping its mates."""

from __future__ import annotations

import math

import pytest
import torch

from equisweep import train
from equisweep.models import FAMILIES
from equisweep.spec import parse_spec
from equisweep.trainer import stack as train_stack
from tests.helpers.families import ALL
from tests.sweep.conftest import tiny_sweep_dict

# Members differ in every hyperparameter a stack lets them differ in.
MEMBER_HPARAMS = [
    {"lr": 3e-3},
    {"lr": 1e-3, "weight_decay": 0.05, "grad_clip": 0.3, "warmup": 0.2, "beta1": 0.8,
     "beta2": 0.99},
]


@pytest.fixture(autouse=True)
def one_thread(monkeypatch):
    """One thread, as a trial gets under Ray (cpu: 1): two threads on a loaded 2-core
    machine made these trials 10x slower."""
    before = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    yield
    torch.set_num_threads(before)


def _configs(family: str, steps: int, eval_every: int, hparams=MEMBER_HPARAMS, **training):
    tiny = tiny_sweep_dict()
    spec = parse_spec(tiny_sweep_dict(
        families={family: {"sizes": [dict(FAMILIES[family].ladder[0])]}},
        training={**tiny["training"], "eval_every": eval_every,
                  "checkpoint_every": eval_every, **training},
        grid={**tiny["grid"], "steps": [steps]}))
    (cell,) = spec.cells()
    return [spec.cell_trial(cell, hp).to_dict() for hp in hparams]


def _close(a: list[dict], b: list[dict], rel: float, cols=("val_loss",)) -> None:
    assert [r["step"] for r in a] == [r["step"] for r in b]
    assert [r.get("status") for r in a] == [r.get("status") for r in b]
    for ra, rb in zip(a, b):
        for col in cols:
            if ra[col] is not None:
                assert rb[col] == pytest.approx(ra[col], rel=rel), (ra["step"], col)
        for col in ("step", "samples", "epochs", "flops", "eval_flops", "val_windows",
                    "test_windows"):
            assert ra[col] == rb[col], col


@pytest.mark.parametrize("family", ALL)
def test_each_member_is_its_trial_alone_float64(family):
    configs = _configs(family, steps=500, eval_every=100)
    stacked = train_stack.run_stack(configs, dtype=torch.float64)
    for config, rows in zip(configs, stacked):
        alone = train.run_trial(config, dtype=torch.float64)
        assert len(alone) == 5 and alone[-1]["status"] == "finished"
        _close(alone, rows, 1e-4, cols=("val_loss", "test_loss", "train_loss", "lr",
                                        "grad_norm"))
    # Different hyperparameters gave different curves (the comparison could fail).
    assert stacked[0][-1]["val_loss"] != pytest.approx(stacked[1][-1]["val_loss"], rel=1e-3)


@pytest.mark.parametrize("family", ALL)
def test_each_member_is_its_trial_alone_float32(family):
    configs = _configs(family, steps=60, eval_every=30)
    stacked = train_stack.run_stack(configs)
    # An equivariant family's equivariance error is float32 rounding: not a curve to compare.
    cols = ("val_loss", "test_loss") + (() if FAMILIES[family].equivariant
                                        else ("equivariance_error",))
    for config, rows in zip(configs, stacked):
        _close(train.run_trial(config), rows, 0.01, cols=cols)


def test_a_diverging_member_does_not_stop_its_mates(monkeypatch):
    hparams = [{"lr": 3e-3}, {"lr": 1e-2}, {"lr": 1e-3}]
    configs = _configs("transformer", steps=20, eval_every=5, hparams=hparams)
    real = train_stack.member_losses
    calls = {"n": 0}

    def member_1_blows_up_at_step_7(pred, batch):
        losses = real(pred, batch)
        if torch.is_grad_enabled() and pred.shape[0] == 3:
            calls["n"] += 1
            if calls["n"] == 7:
                return losses * torch.tensor([1.0, math.nan, 1.0], dtype=losses.dtype)
        return losses

    monkeypatch.setattr(train_stack, "member_losses", member_1_blows_up_at_step_7)
    stacked = train_stack.run_stack(configs, dtype=torch.float64)
    assert [r["step"] for r in stacked[1]] == [5, 7]
    assert stacked[1][-1]["status"] == "diverged"
    assert "non-finite training loss at step 7" in stacked[1][-1]["error"]
    monkeypatch.undo()
    for m in (0, 2):
        _close(train.run_trial(configs[m], dtype=torch.float64), stacked[m], 1e-9,
               cols=("val_loss", "test_loss", "train_loss", "wall_s")[:3])


def test_member_checkpoints_are_trial_checkpoints(tmp_path):
    """A stack restored from its members' checkpoints continues as if uninterrupted; a
    member's checkpoint restores into the lone trainer, and a trunk's forks carry the rows
    a branch re-reports."""
    configs = _configs("gatr", steps=20, eval_every=5, checkpoint_every=10)
    dirs = [tmp_path / "a0", tmp_path / "a1"]
    full = list(train_stack.iter_stack(configs, checkpoint_dirs=dirs, fork_steps=[[], [12]],
                                       dtype=torch.float64))
    rows = [[e.row for m, e in full if m == k and e.row is not None] for k in (0, 1)]
    at10 = [e.checkpoint_dir for m, e in sorted(full, key=lambda me: me[0])
            if e.row is not None and e.row["step"] == 10]
    assert len(at10) == 2 and all(at10)
    forks = [(m, e) for m, e in full if e.fork_step is not None]
    assert [(m, e.fork_step) for m, e in forks] == [(1, 12)]
    assert [r["step"] for r in forks[0][1].fork_rows] == [5, 10]
    # ... and the member's training FLOPs at the fork, as its lone run counts them (the fork
    # record carries them to a branch resumed from its own checkpoint)
    from equisweep.task import TaskConfig, ensure_dataset

    path = ensure_dataset(TaskConfig.from_dict(configs[1]["task"]))
    assert forks[0][1].fork_flops == train.training_flops(dict(configs[1], steps=12), path)

    resumed = train_stack.run_stack(configs, checkpoint_dirs=[tmp_path / "b0", tmp_path / "b1"],
                                    restore_from=at10, dtype=torch.float64)
    for k in (0, 1):
        _close(rows[k][2:], resumed[k], 1e-10, cols=("val_loss", "test_loss", "train_loss"))
    alone = train.run_trial(configs[1], restore_from=at10[1], dtype=torch.float64)
    _close(rows[1][2:], alone, 1e-9, cols=("val_loss", "test_loss", "train_loss"))
    branch = train.run_trial(configs[1], restore_from=forks[0][1].checkpoint_dir,
                             dtype=torch.float64)
    _close(rows[1][2:], branch, 1e-9, cols=("val_loss", "test_loss", "train_loss"))


def test_only_hparams_may_differ_within_a_stack():
    a = _configs("transformer", steps=20, eval_every=5)
    b = dict(a[1], seed=1)
    with pytest.raises(ValueError, match="'seed'"):
        train_stack.check_stackable([a[0], b])


def test_stacked_training_runs_under_the_trials_precision(monkeypatch):
    """`training.precision: bf16` autocasts the stack's training forward as it does a lone
    trial's (it used to apply to the stack's evaluation only): every training step enters
    the trial's precision context."""
    import contextlib

    entered = []

    @contextlib.contextmanager
    def spy(self, device):
        entered.append(device.type)
        yield

    monkeypatch.setattr(train.Settings, "autocast", spy)
    configs = _configs("transformer", steps=6, eval_every=6)
    list(train_stack.iter_stack(configs))
    monkeypatch.undo()
    evaluations = len(entered)
    entered.clear()
    monkeypatch.setattr(train.Settings, "autocast", spy)
    lone = list(train.iter_trial(configs[0]))
    assert lone and len(entered) >= 6  # the lone trainer: one per training step, + eval
    assert evaluations >= 6, evaluations  # the stack: the same six training steps at least
