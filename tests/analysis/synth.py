"""Synthetic sweeps with planted scaling laws, written through the real results store."""

from __future__ import annotations

import itertools

import numpy as np

# planted law per family: L(N, S, D) = E + A/N^alpha + B/S^beta + G/D^delta (final loss);
# FLOPs per step F(N) = k*N^p
LAWS = {
    "gatr": dict(E=0.002, A=3.0, alpha=0.45, B=1.5, beta=0.55, G=0.4, delta=0.8, k=900.0,
                 p=1.15),
    "transformer": dict(E=0.004, A=2.0, alpha=0.35, B=2.0, beta=0.5, G=1.2, delta=0.6, k=200.0,
                        p=1.0),
}


def law_loss(fam, N, S, D):
    c = LAWS[fam]
    return c["E"] + c["A"] / N ** c["alpha"] + c["B"] / S ** c["beta"] + c["G"] / D ** c["delta"]


def write_sweep(store, name, *, sizes, steps, trajs, families=("gatr", "transformer"),
                augment=None, noise=0.01, seed=0, evals=8, extra_trial=None):
    """One trial per grid cell, curves of `evals` points, final test loss with noise."""
    rng = np.random.default_rng(seed)
    augment = augment or {"gatr": [False], "transformer": [True]}
    with store.writer(name) as w:
        for fam in families:
            for N, S, D, aug in itertools.product(sizes[fam], steps, trajs, augment[fam]):
                key = f"{fam}-{N}-{S}-{D}-{int(aug)}"
                c = LAWS[fam]
                F = c["k"] * N ** c["p"]
                w.add_trial({"key": key, "family": fam, "size": {"n": N}, "n_params": N,
                             "flops_per_step": F, "steps": S, "train_trajectories": D,
                             "augment": aug, "seed": 0, "status": "running", "attempt": 1})
                rows = []
                for s in np.unique(np.linspace(S / evals, S, evals).astype(int)):
                    lv = law_loss(fam, N, s, D) * np.exp(noise * rng.normal())
                    rows.append({"key": key, "attempt": 1, "step": int(s), "samples": int(s) * 16,
                                 "epochs": s * 16 / D, "flops": float(s * F), "val_loss": lv,
                                 "train_loss": lv * 0.9})
                rows[-1]["test_loss"] = law_loss(fam, N, S, D) * np.exp(noise * rng.normal())
                w.add_metrics(rows)
                w.add_trial({"key": key, "family": fam, "size": {"n": N}, "n_params": N,
                             "flops_per_step": F, "steps": S, "train_trajectories": D,
                             "augment": aug, "seed": 0, "status": "finished", "attempt": 1})
        if extra_trial:
            extra_trial(w)
    return store


