"""Row builders shared by the results-store tests (uniquely named: tests/ has no packages)."""

from __future__ import annotations


def trial(key, status="running", attempt=1, **extra):
    row = {"key": key, "family": "gatr", "size": {"width": 8, "depth": 2}, "n_params": 1000,
           "flops_per_step": 1e6, "steps": 10, "train_trajectories": 16, "augment": False,
           "seed": 0, "hparams": {"lr": 1e-3}, "config": {"steps": 10}, "status": status,
           "attempt": attempt, "node": "n1"}
    row.update(extra)
    return row


def metric(key, step, attempt=1, **extra):
    row = {"key": key, "attempt": attempt, "step": step, "samples": step * 16,
           "flops": step * 1e6, "train_loss": 1.0 / (step + 1)}
    row.update(extra)
    return row
