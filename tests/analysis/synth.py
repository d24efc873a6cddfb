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
                augment=None, noise=0.01, seed=0, evals=8, extra_trial=None, samples=1,
                detune=0.5, equivariance_error=False):
    """`samples` trials per grid cell (learning rates 1e-3·3^i; sample i's loss is the law
    times 1 + detune·i, so the first sample is the tuned one), curves of `evals` points,
    final test loss with noise."""
    rng = np.random.default_rng(seed)
    augment = augment or {"gatr": [False], "transformer": [True]}
    with store.writer(name) as w:
        for fam in families:
            for N, S, D, aug in itertools.product(sizes[fam], steps, trajs, augment[fam]):
                for i in range(samples):
                    key = f"{fam}-{N}-{S}-{D}-{int(aug)}" + (f"-s{i}" if samples > 1 else "")
                    c = LAWS[fam]
                    F = c["k"] * N ** c["p"]
                    trial = {"key": key, "family": fam, "size": {"n": N}, "n_params": N,
                             "flops_per_step": F, "steps": S, "train_trajectories": D,
                             "augment": aug, "seed": 0, "hparams": {"lr": 1e-3 * 3**i},
                             "attempt": 1}
                    w.add_trial({**trial, "status": "running"})
                    pen = 1 + detune * i
                    rows = []
                    for s in np.unique(np.linspace(S / evals, S, evals).astype(int)):
                        lv = pen * law_loss(fam, N, s, D) * np.exp(noise * rng.normal())
                        row = {"key": key, "attempt": 1, "step": int(s), "samples": int(s) * 16,
                               "epochs": s * 16 / D, "flops": float(s * F), "val_loss": lv,
                               "train_loss": lv * 0.9, "wall_s": s * F / 1e9}
                        if equivariance_error and fam == "transformer":
                            row["equivariance_error"] = 0.5 / np.sqrt(s) / (1 + 3 * aug)
                        rows.append(row)
                    rows[-1]["test_loss"] = pen * law_loss(fam, N, S, D) * np.exp(
                        noise * rng.normal())
                    w.add_metrics(rows)
                    w.add_trial({**trial, "status": "finished"})
        if extra_trial:
            extra_trial(w)
    return store




class NewerStore:
    """A real store seen through the columns newer stores add (the evaluation and spec
    changes): test_loss_se and test_windows on final rows, the family's `equivariant` flag,
    `hp_lr`, and a `baselines(sweep=...)` table. Lets the analysis be tested against them
    before and after they land in equisweep.store."""

    def __init__(self, store, *, rel_se=0.05, windows=512, equivariant=None, baselines=None,
                 hp=True):
        self._store, self.rel_se, self.windows = store, rel_se, windows
        self.equivariant = equivariant if equivariant is not None else {
            "gatr": True, "transformer": False}
        self._baselines = baselines
        self.hp = hp

    def __getattr__(self, name):
        return getattr(self._store, name)

    def final(self, sweep=None, where=None):
        import json

        df = self._store.final(sweep).to_pandas()
        if self.rel_se is not None:
            df["test_loss_se"] = df["test_loss"] * self.rel_se
            df["test_windows"] = self.windows
        df["equivariant"] = [self.equivariant.get(f) for f in df["family"]]
        if self.hp:
            df["hp_lr"] = [json.loads(h or "{}").get("lr", 1e-3) for h in df["hparams"]]
        return df

    def baselines(self, sweep=None):
        import pandas as pd

        return pd.DataFrame(self._baselines if self._baselines is not None else [
            {"split": s, "baseline": b, "loss": v, "loss_se": v * 0.04, "windows": 512,
             "delta": 1} for s in ("val", "test")
            for b, v in (("copy_last", 0.9), ("constant_velocity", 0.2))])
