"""Inputs of the analysis: a sweep from the results store, or any CSV table.

`load_sweep` is the ONE place that knows the store's column names; everything downstream
works on the two pandas frames it returns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from equisweep.errors import UserError

FINAL_COLUMNS = ("key", "family", "n_params", "flops_per_step", "steps", "train_trajectories",
                 "augment")
CURVE_COLUMNS = ("key", "step")


@dataclass
class SweepData:
    """final: one row per finished trial with columns key, family, variant, augment, N
    (n_params), S (steps), F (flops_per_step), C (training FLOPs), D (train_trajectories),
    epochs, samples, loss (test loss, val loss where no test loss was recorded), loss_kind.
    curves: key, variant, N, step, C (cumulative FLOPs), val_loss, train_loss."""

    name: str
    final: pd.DataFrame
    curves: pd.DataFrame
    n_trials_total: int
    notes: list[str]


def variant_name(family: str, augment: bool) -> str:
    return f"{family}+aug" if augment else str(family)


def load_sweep(store, sweep: str) -> SweepData:
    """Read one sweep from a store (`Store.final`, `.metrics`, `.sweeps`: DESIGN §7, §10)."""
    known = list(store.sweeps())
    if sweep not in known:
        from equisweep.errors import unknown_sweep

        raise unknown_sweep(sweep, getattr(store, "uri", None) or getattr(store, "root", ""),
                            known)
    final = _to_pandas(store.final(sweep))
    missing = [c for c in FINAL_COLUMNS if c not in final.columns]
    if "test_loss" not in final.columns and "val_loss" not in final.columns:
        missing.append("test_loss")
    if missing:
        raise UserError(f"sweep {sweep!r}: final table lacks column(s) {', '.join(missing)}")
    n_total = len(final)
    notes = []
    if "status" in final.columns:
        final = final[final["status"] == "finished"]
        if len(final) < n_total:
            notes.append(f"{n_total - len(final)} of {n_total} trials not finished: left out")
    if final.empty:
        raise UserError(f"sweep {sweep!r} has no finished trials to analyse")
    test = _col(final, "test_loss")
    val = _col(final, "val_loss")
    loss = np.where(np.isfinite(test), test, val)
    kind = np.where(np.isfinite(test), "test", "val")
    bad = ~(np.isfinite(loss) & (loss > 0))
    if bad.any():
        keys = ", ".join(map(str, final["key"].to_numpy()[bad][:3]))
        raise UserError(
            f"sweep {sweep!r}: {int(bad.sum())} finished trial(s) have a NaN or non-positive "
            f"test_loss/val_loss (key {keys}); mark them failed or re-run them"
        )
    if (kind == "val").any():
        notes.append(f"{int((kind == 'val').sum())} trial(s) without test_loss: val_loss used")
    for col in ("n_params", "flops_per_step", "steps"):
        v = _col(final, col)
        if not np.all(np.isfinite(v) & (v > 0)):
            raise UserError(f"sweep {sweep!r}: column {col} must be positive for every trial")
    N, F, S = _col(final, "n_params"), _col(final, "flops_per_step"), _col(final, "steps")
    C = _col(final, "flops")
    C = np.where(np.isfinite(C) & (C > 0), C, F * S)  # the trainer's cumulative count wins
    augment = final["augment"].fillna(False).astype(bool).to_numpy()
    fam = final["family"].astype(str).to_numpy()
    out = pd.DataFrame({
        "key": final["key"].astype(str).to_numpy(),
        "family": fam,
        "augment": augment,
        "variant": [variant_name(f, a) for f, a in zip(fam, augment)],
        "N": N, "S": S, "F": F, "C": C,
        "D": _col(final, "train_trajectories"),
        "epochs": _col(final, "epochs"),
        "samples": _col(final, "samples"),
        "seed": _col(final, "seed"),
        "loss": loss, "loss_kind": kind,
    })
    curves = _curves(store, sweep, out)
    return SweepData(name=sweep, final=out.reset_index(drop=True), curves=curves,
                     n_trials_total=n_total, notes=notes)


def _curves(store, sweep, final: pd.DataFrame) -> pd.DataFrame:
    cols = ["key", "variant", "N", "step", "C", "val_loss", "train_loss"]
    m = _to_pandas(store.metrics(sweep))
    if m.empty or any(c not in m.columns for c in CURVE_COLUMNS):
        return pd.DataFrame(columns=cols)
    m = m[m["key"].astype(str).isin(set(final["key"]))].copy()
    m["key"] = m["key"].astype(str)
    info = final.set_index("key")[["variant", "N", "F"]]
    m = m.join(info, on="key")
    step = pd.to_numeric(m["step"], errors="coerce").to_numpy(float)
    C = _col(m, "flops")
    m["C"] = np.where(np.isfinite(C) & (C > 0), C, step * m["F"].to_numpy(float))
    m["step"] = step
    for c in ("val_loss", "train_loss"):
        m[c] = _col(m, c)
    return m[cols].sort_values(["key", "step"]).reset_index(drop=True)


def _to_pandas(table) -> pd.DataFrame:
    if isinstance(table, pd.DataFrame):
        return table.copy()
    return table.to_pandas()


def _col(df: pd.DataFrame, name: str) -> np.ndarray:
    if name not in df.columns:
        return np.full(len(df), np.nan)
    return pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float)


# -- generic tables (equisweep fit) ------------------------------------------------------


def load_table(path, columns: dict[str, str]) -> pd.DataFrame:
    """Read a CSV and return the requested columns (role -> column name) as floats,
    with a one-line UserError for a missing file/column or non-numeric cells."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise UserError(f"--csv {path}: no such file")
    try:
        df = pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise UserError(f"--csv {path}: cannot read as CSV ({' '.join(str(err).split())})") from err
    missing = [c for c in columns.values() if c not in df.columns]
    if missing:
        raise UserError(
            f"--csv {path}: no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(map(str, df.columns))})"
        )
    out = pd.DataFrame()
    for role, col in columns.items():
        v = pd.to_numeric(df[col], errors="coerce")
        if v.isna().any():
            raise UserError(f"--csv {path}: column {col!r} has {int(v.isna().sum())} empty, NaN "
                            "or non-numeric value(s)")
        out[role] = v.astype(float)
    return out
