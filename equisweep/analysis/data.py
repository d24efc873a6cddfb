"""Inputs of the analysis: a sweep from the results store, or any CSV table.

`load_sweep` is the ONE place that knows the store's column names; everything downstream
works on the pandas frames it returns. Columns that newer stores add (test_loss_se,
test_windows, the baselines table, the family's `equivariant` flag, `hp_<name>`) are used
when present; an older store reads with them missing (NaN / empty), never as an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from equisweep.errors import UserError

FINAL_COLUMNS = ("key", "family", "n_params", "flops_per_step", "steps", "train_trajectories",
                 "augment")
CURVE_COLUMNS = ("key", "step")
# what the compute axis of every fit can be: training FLOPs (default), FLOPs under GATr
# v1.4's nominal convention (models/nominal.py) or measured wall-clock
COMPUTE_KINDS = {"flops": "FLOPs", "nominal": "nominal FLOPs", "wall": "s"}
CELL_COLUMNS = ("family", "size", "S", "D", "augment", "seed")  # DESIGN §6: one grid cell


@dataclass
class SweepData:
    """final: one row per finished trial with columns key, family, variant, augment,
    equivariant (True/False, None where the store does not say), size (JSON), N (n_params),
    S (steps), F (compute per step: FLOPs, or seconds with compute="wall"), C (training
    compute), D (train_trajectories), seed, epochs, samples, loss (test loss, val loss where
    no test loss was recorded), loss_kind, loss_se (NaN where not recorded), windows,
    val_loss (final), lr, hparams (JSON text), cluster (the WSD trunk a point forks from, its
    own key otherwise: the bootstrap's resampling unit).
    curves: key, variant, N, step, C (cumulative compute), val_loss, train_loss,
    equivariance_error.
    baselines: split, baseline, loss, loss_se (the store's baselines table; empty if none).
    provenance: equisweep version, sweep spec source, dataset key, submitted/analysed dates."""

    name: str
    final: pd.DataFrame
    curves: pd.DataFrame
    n_trials_total: int
    notes: list[str]
    baselines: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        columns=["split", "baseline", "loss", "loss_se"]))
    provenance: dict = field(default_factory=dict)
    compute: str = "flops"

    @property
    def compute_unit(self) -> str:
        return COMPUTE_KINDS[self.compute]


def variant_name(family: str, augment: bool) -> str:
    return f"{family}+aug" if augment else str(family)


def load_sweep(store, sweep: str, compute: str = "flops") -> SweepData:
    """Read one sweep from a store (`Store.final`, `.metrics`, `.sweeps`: DESIGN §7, §10).

    compute: "flops" (training FLOPs, the default), "nominal" (GATr v1.4's nominal count:
    nominal_flops_per_step × steps) or "wall" (measured training wall-clock: the final row's
    wall_s; per-step cost wall_s / steps)."""
    if compute not in COMPUTE_KINDS:
        raise UserError(f"--compute {compute!r}: choose one of {', '.join(COMPUTE_KINDS)}")
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
            notes.append(f"{n_total - len(final)} trial(s) in the store not finished "
                         "(running, failed or stopped): left out")
    if final.empty:
        from equisweep.store.best import final_loss, why_no_points

        every = _to_pandas(store.final(sweep))
        statuses = every["status"].tolist() if "status" in every else []
        raise UserError(f"sweep {sweep!r}: nothing to analyse: "
                        f"{why_no_points(statuses, final_loss(every))}")
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
    if compute in ("wall", "nominal"):
        C = _col(final, "wall_s") if compute == "wall" else _nominal_flops(final)
        what = ("wall_s on the final rows" if compute == "wall" else
                "a nominal count (family declared in models/nominal.py, trial config stored)")
        ok = np.isfinite(C) & (C > 0)
        if not ok.any():
            raise UserError(f"sweep {sweep!r}: --compute {compute} needs {what} "
                            "(no trial has it)")
        if not ok.all():
            notes.append(f"--compute {compute}: {int((~ok).sum())} trial(s) without {what} "
                         "left out")
            final, loss, kind = final[ok], loss[ok], kind[ok]
            N, S, C = N[ok], S[ok], C[ok]
        F = C / S  # per-step cost: measured seconds, or the nominal count of one step
    augment = final["augment"].fillna(False).astype(bool).to_numpy()
    fam = final["family"].astype(str).to_numpy()
    out = pd.DataFrame({
        "key": final["key"].astype(str).to_numpy(),
        "family": fam,
        "augment": augment,
        "equivariant": _flag(final, "equivariant"),
        "variant": [variant_name(f, a) for f, a in zip(fam, augment)],
        "size": _text(final, "size", N),
        "N": N, "S": S, "F": F, "C": C,
        "C_flops": _counted_flops(final), "C_nominal": _nominal_flops(final),
        "wall_s": _col(final, "wall_s"),
        "D": _col(final, "train_trajectories"),
        "epochs": _col(final, "epochs"),
        "samples": _col(final, "samples"),
        "seed": _col(final, "seed"),
        "loss": loss, "loss_kind": kind,
        "loss_se": np.where(kind == "test", _col(final, "test_loss_se"), np.nan),
        "windows": _col(final, "test_windows"),
        "val_loss": _col(final, "val_loss"),
        "lr": _learning_rate(final),
        "hparams": _text(final, "hparams", np.full(len(final), "")),
        "cluster": _cluster(final),
        # The cell's identity beyond its grid columns (`tuned.CELL_IDENTITY`).
        "cell_key": _ids(final, "cell_key"),
        "dataset": _ids(final, "dataset"),
    })
    curves = _curves(store, sweep, out, compute)
    return SweepData(name=sweep, final=out.reset_index(drop=True), curves=curves,
                     n_trials_total=n_total, notes=notes, baselines=_baselines(store, sweep),
                     provenance=_provenance(store, sweep, final), compute=compute)


def _counted_flops(final: pd.DataFrame) -> np.ndarray:
    """Training FLOPs as counted (whatever the fits' compute axis is)."""
    C = _col(final, "flops")
    F, S = _col(final, "flops_per_step"), _col(final, "steps")
    return np.where(np.isfinite(C) & (C > 0), C, F * S)


def _nominal_flops(final: pd.DataFrame) -> np.ndarray:
    """Training FLOPs under GATr v1.4's nominal convention: the trial's stored
    `nominal_flops_per_step` × steps, computed from its family, size and config
    (models/nominal.py, no torch) where the row predates the column; NaN where neither says
    (a family without a nominal count, a row without its config)."""
    from equisweep.models.nominal import per_step

    per = _col(final, "nominal_flops_per_step").copy()
    missing = np.flatnonzero(~np.isfinite(per))
    if missing.size and {"size", "config"} <= set(final.columns):
        fam, size = final["family"].tolist(), final["size"].tolist()
        config = final["config"].tolist()
        cache: dict = {}
        for i in missing:
            ident = _nominal_inputs(fam[i], size[i], config[i])
            if ident not in cache:
                cache[ident] = None if ident is None else per_step(
                    ident[0], ident[1], json.loads(ident[2]), ident[3])
            per[i] = np.nan if cache[ident] is None else cache[ident]
    return per * _col(final, "steps")


def _nominal_inputs(family, size, config) -> tuple | None:
    """(family, size JSON, task JSON, batch_size) of a stored row: what its nominal count
    depends on (many trials share them); None if the row does not say."""
    try:
        cfg = json.loads(config) if isinstance(config, str) else None
    except ValueError:
        return None
    if not isinstance(cfg, dict) or not isinstance(size, str):
        return None
    task, training = cfg.get("task"), cfg.get("training")
    if not isinstance(task, dict) or not isinstance(training, dict):
        return None
    return (str(family), size, json.dumps(task, sort_keys=True),
            training.get("batch_size", 0))


def _cluster(final: pd.DataFrame) -> np.ndarray:
    """The run a point's noise comes from: its WSD trunk (a branch shares its trunk's
    initialisation, data order and first (1 − cooldown)·S steps), else the trial itself."""
    keys = final["key"].astype(str).to_numpy()
    if "trunk" not in final.columns:
        return keys.astype(object)
    trunk = final["trunk"].tolist()
    return np.array([t if isinstance(t, str) and t else k for t, k in zip(trunk, keys)],
                    dtype=object)


def _flag(df: pd.DataFrame, name: str) -> np.ndarray:
    """A nullable boolean column as objects True/False/None (None: the store does not say)."""
    if name not in df.columns:
        return np.full(len(df), None, dtype=object)
    return np.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else bool(v)
                     for v in df[name].tolist()], dtype=object)


def _text(df: pd.DataFrame, name: str, default) -> np.ndarray:
    if name not in df.columns:
        return np.asarray([str(v) for v in default], dtype=object)
    return np.asarray(["" if v is None else str(v) for v in df[name].tolist()], dtype=object)


def _learning_rate(df: pd.DataFrame) -> np.ndarray:
    """The searched learning rate: the `hp_lr` column where the store has one, else the
    trial's hparams JSON (older stores), NaN where neither says."""
    import json

    if "hp_lr" in df.columns:
        return _col(df, "hp_lr")
    out = np.full(len(df), np.nan)
    if "hparams" not in df.columns:
        return out
    for i, blob in enumerate(df["hparams"].tolist()):
        try:
            v = json.loads(blob).get("lr") if blob else None
        except (TypeError, ValueError, AttributeError):
            v = None
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[i] = float(v)
    return out


def _baselines(store, sweep: str) -> pd.DataFrame:
    cols = ["split", "baseline", "loss", "loss_se"]
    reader = getattr(store, "baselines", None)
    if reader is None:  # a store from before the baselines table
        return pd.DataFrame(columns=cols)
    b = _to_pandas(reader(sweep=sweep))
    if b.empty or not {"split", "baseline", "loss"} <= set(b.columns):
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame({"split": b["split"].astype(str), "baseline": b["baseline"].astype(str),
                        "loss": _col(b, "loss"), "loss_se": _col(b, "loss_se")})
    return out[np.isfinite(out["loss"]) & (out["loss"] > 0)].reset_index(drop=True)


def _provenance(store, sweep: str, final: pd.DataFrame) -> dict:
    """What produced the numbers: equisweep version, the sweep spec, the dataset key, and the
    newest trial end the data contain (not the clock at analysis time: fits.json is a
    function of the store, so the same command regenerates it bit for bit)."""
    import json

    from equisweep import __version__

    out = {"equisweep_version": __version__, "sweep": sweep, "data_as_of": _newest_end(final)}
    meta = None
    try:
        meta = store.read_sweep_meta(sweep)
    except (AttributeError, OSError):
        meta = None
    if meta:
        out["spec_source"] = meta.get("source")
        out["submitted_at"] = meta.get("submitted_at")
        out["spec"] = meta.get("spec")
        out["planned_trials"] = meta.get("planned_trials")
    task = (meta or {}).get("spec", {}).get("task") if isinstance(meta, dict) else None
    if task is None and "config" in final.columns and len(final):
        try:
            task = json.loads(final["config"].iloc[0]).get("task")
        except (TypeError, ValueError, AttributeError):
            task = None
    out["dataset_key"] = _dataset_key(task)
    return out


def _newest_end(final: pd.DataFrame) -> str | None:
    if "ended_at" not in final.columns or not len(final):
        return None
    ends = pd.to_datetime(final["ended_at"], utc=True, errors="coerce").dropna()
    return ends.max().isoformat(timespec="seconds") if len(ends) else None


def _ids(final: pd.DataFrame, col: str) -> np.ndarray:
    """An identity column as text, "" where the store has none (older rows)."""
    if col not in final.columns:
        return np.full(len(final), "", dtype=object)
    return final[col].fillna("").astype(str).to_numpy()


def _dataset_key(task) -> str | None:
    if not isinstance(task, dict):
        return None
    try:
        from equisweep.task.config import TaskConfig

        return TaskConfig.from_dict(dict(task)).key()
    except Exception:  # noqa: BLE001 - provenance is best effort; a bad spec never stops a report
        return None


def _curves(store, sweep, final: pd.DataFrame, compute: str = "flops") -> pd.DataFrame:
    cols = ["key", "variant", "N", "step", "C", "val_loss", "train_loss", "equivariance_error"]
    m = _to_pandas(store.metrics(sweep))
    if m.empty or any(c not in m.columns for c in CURVE_COLUMNS):
        return pd.DataFrame(columns=cols)
    m = m[m["key"].astype(str).isin(set(final["key"]))].copy()
    m["key"] = m["key"].astype(str)
    info = final.set_index("key")[["variant", "N", "F"]]
    m = m.join(info, on="key")
    step = pd.to_numeric(m["step"], errors="coerce").to_numpy(float)
    if compute == "wall":
        m["C"] = _col(m, "wall_s")
    elif compute == "nominal":  # the nominal count of a step is the same at every step
        m["C"] = step * m["F"].to_numpy(float)
    else:
        C = _col(m, "flops")
        m["C"] = np.where(np.isfinite(C) & (C > 0), C, step * m["F"].to_numpy(float))
    m["step"] = step
    for c in ("val_loss", "train_loss", "equivariance_error"):
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
    if out.empty:
        raise UserError(f"--csv {path}: no data rows (only a header)")
    return out
