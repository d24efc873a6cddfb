"""`equisweep analyze`: every fit of DESIGN §8 for every model variant of a sweep.

A variant is a family with its augmentation setting ("transformer+aug"), because the study
compares the equivariant model with the baseline trained with and without augmentation.
Which variant is equivariant comes from the store's `equivariant` column (the family's own
declaration), never from a family name.

Pipeline: tuned points (tuned.py: one trial per grid cell, best by validation loss) →
per-variant fits with their validity (sections.py, validity.py) → comparisons between
variants (compare.py) → the three answers of the study (verdict.py) → fits.json and
report.html. FLOPs per step F(N) is fitted over the variant's trials (frontier.fit_flops), so
each family's compute-optimal allocation uses its own FLOP formula; with compute="wall" the
same machinery runs on measured seconds.
"""

from __future__ import annotations

import itertools
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from equisweep.analysis import (
    costs,
    frontier,
    grid_edge,
    lawfit,
    sections,
    strict_json,
    tuned,
    verdict,
)
from equisweep.analysis.bootstrap import CI_LEVEL
from equisweep.analysis.compare import compare
from equisweep.analysis.data import SweepData, load_sweep
from equisweep.analysis.noise import run_noise
from equisweep.analysis.summary import summary_table


@dataclass
class AnalysisResult:
    fits: dict
    summary: str
    out_dir: Path | None = None
    files: list[str] = field(default_factory=list)


def analyze_store(store_uri, name, out, *, n_boot=200, seed=0, workers=None, png=True,
                  progress=False, points="tuned", compute="flops") -> AnalysisResult:
    from equisweep.store import open_store

    store = open_store(store_uri, must_exist=True)
    data = load_sweep(store, name, compute=compute)
    fits = analyze_data(data, n_boot=n_boot, seed=seed, workers=workers, progress=progress,
                        points=points)
    fits["store"] = str(store_uri)
    fits["progress"] = progress_of(store, name, data)
    if fits["progress"]["statement"]:
        fits["notes"].insert(0, fits["progress"]["statement"])
    from equisweep.analysis import report

    html, pngs, png_note = report.render(data, fits, png=png)
    files = write_outputs(Path(out), fits, html, pngs)
    summary = summary_table(fits, files, png_note)
    return AnalysisResult(fits=fits, summary=summary, out_dir=Path(out), files=files)


def progress_of(store, name, data) -> dict:
    """Whether the sweep's driver is still running, and finished vs planned trials (the
    submitted plan), so that a report written mid-run says it is provisional."""
    from equisweep.store.heartbeat import driver_alive, read_beat

    running = bool(driver_alive(read_beat(store, name)))
    planned = data.provenance.get("planned_trials")
    done = int(len(data.final))
    out = {"running": running, "finished_trials": done, "planned_trials": planned,
           "statement": None}
    of = f"{done} of {planned} planned trials" if planned else f"{done} trials"
    if running:
        out["statement"] = (f"the sweep is still running: {of} finished; this report is "
                            "provisional")
    elif planned and done < planned:
        out["statement"] = f"{of} finished (the sweep's driver is not running)"
    return out


def write_outputs(out: Path, fits: dict, html: str, pngs: dict[str, bytes]) -> list[str]:
    """Write everything to temporary names first, then rename: no half-written report."""
    from equisweep.errors import UserError

    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"--out {out}: cannot create folder ({err.strerror})") from err
    payload = {"fits.json": strict_json.dumps(fits, indent=2).encode(),
               "report.html": html.encode()}
    payload.update({f"{k}.png": v for k, v in pngs.items()})
    staged = []
    umask = os.umask(0)
    os.umask(umask)
    try:
        for fname, blob in payload.items():
            fd, tmp = tempfile.mkstemp(prefix=f".{fname}.", suffix=".tmp", dir=out)
            staged.append((tmp, out / fname))  # before writing: a partial file is removed too
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; outputs are ordinary files
    except OSError as err:  # a full disk, a read-only folder: nothing of this run is left
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        if created and not any(out.iterdir()):
            out.rmdir()
        raise UserError(f"--out {out}: cannot write ({err.strerror})") from err
    for tmp, final in staged:
        os.replace(tmp, final)
    return [str(final) for _, final in staged]


def analyze_data(data: SweepData, *, n_boot=200, seed=0, workers=None, progress=False,
                 points="tuned") -> dict:
    chosen, cells = tuned.select(data.final, points)
    edges = grid_edge.flags(cells, grid_edge.hparams_by_key(data.final))
    cost = costs.per_point(chosen)
    for c in cells:
        c["at_grid_edge"] = edges.get(c["key"], [])
        c["cost"] = cost.get(str(c["key"]))
    fits = {
        "sweep": data.name,
        "ci_level": CI_LEVEL,
        "bootstrap": n_boot,
        "seed": seed,
        "huber_delta": lawfit.HUBER_DELTA,
        "compute": {"kind": data.compute, "unit": data.compute_unit},
        "notes": list(data.notes),
        "n_trials": int(len(data.final)),
        "points": {
            "mode": points,
            "rule": "one point per cell (family, size, steps, train_trajectories, augment, "
                    "seed): the trial with the lowest final val_loss; its test loss is fitted"
                    if points == "tuned" else "every finished trial (search samples pooled)",
            "n_points": int(len(chosen)),
            "n_cells": len(cells),
            "grid_edge": grid_edge.summary(cells, edges),
            "cells": cells,
        },
        "provenance": {k: v for k, v in data.provenance.items() if k != "spec"},
        "baselines": [{k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                       for k, v in r.items()} for r in data.baselines.to_dict(orient="records")],
        "variants": {},
        "comparisons": [],
    }
    fits["run_noise"] = run_noise(chosen)
    keys = set(chosen["key"])
    curves_all = data.curves[data.curves["key"].isin(keys)]
    reps = {}
    groups = sorted(chosen.groupby("variant"), key=lambda t: t[0])
    say = _stage if progress else (lambda text: None)
    say(f"analyze {data.name}: {len(data.final)} trials, {len(chosen)} points in "
        f"{len(groups)} variants; {n_boot} bootstrap resamples per fit")
    for i, (variant, sel) in enumerate(groups):
        say(f"analyze {data.name}: fitting {variant} ({i + 1}/{len(groups)}): every law form, "
            "its held-out errors and intervals, the frontier, the data axis")
        curves = curves_all[curves_all["variant"] == variant]
        v, r = _variant(variant, sel, curves, n_boot, [seed, i], workers, progress,
                        data.compute_unit, fits["run_noise"])
        fits["variants"][variant] = v
        reps[variant] = r
    say(f"analyze {data.name}: comparing the variants and the costs of equal loss")
    for a, b in itertools.combinations(list(fits["variants"]), 2):
        fits["comparisons"].append(compare(a, b, fits["variants"], reps, data.compute_unit))
    fits["cost_conventions"] = costs.question2(
        chosen, verdict.ordered_pairs(fits["variants"])[0], fits["run_noise"])
    fits["verdict"] = verdict.answers(fits, chosen)
    return fits


def _stage(text: str) -> None:
    """A progress line on stderr: an analysis takes minutes (fits x forms x resamples)."""
    import sys

    from equisweep.terminal import printable

    print(printable(text), file=sys.stderr, flush=True)  # variant names come from the store


def _variant(variant, sel, curves, n_boot, seed, workers, progress, unit, noise=None):
    C = sel["C"].to_numpy()
    eq = {e for e in sel["equivariant"].tolist() if e is not None}
    out = {
        "family": str(sel["family"].iloc[0]),
        "augment": bool(sel["augment"].iloc[0]),
        "equivariant": eq.pop() if len(eq) == 1 else None,
        "n_trials": int(len(sel)),
        "sizes": sorted(float(x) for x in np.unique(sel["N"])),
        "steps": sorted(float(x) for x in np.unique(sel["S"])),
        "train_trajectories": sorted(float(x) for x in np.unique(sel["D"][np.isfinite(sel["D"])])),
        "compute_range": [float(C.min()), float(C.max())],
        "best": _best(sel),
    }
    fm = frontier.fit_flops(sel["N"], sel["F"])
    out["flops_model"] = fm.to_json()
    run = sections.run_section
    out["approach3"], rep3 = run(sections.approach3, sel, fm, n_boot, seed, workers, progress,
                                 unit, noise)
    # each fit draws its own resamples (same seed, distinct stream)
    out["approach1"], _ = run(sections.approach1, curves, n_boot, seed + [1], workers)
    out["approach2"], _ = run(sections.approach2, curves, n_boot, seed + [2])
    out["data_efficiency"], _ = run(sections.data_efficiency, sel, n_boot, seed + [3], workers)
    return out, rep3


def _best(sel) -> dict:
    """The variant's best point by validation loss, reported with its test loss and s.e."""
    rank = np.where(np.isfinite(sel["val_loss"]), sel["val_loss"], sel["loss"])
    r = sel.iloc[int(np.argmin(rank))]
    se = float(r["loss_se"])
    return {"key": str(r["key"]), "loss": float(r["loss"]), "loss_kind": str(r["loss_kind"]),
            "loss_se": se if np.isfinite(se) else None, "N": float(r["N"]), "S": float(r["S"]),
            "D": float(r["D"]) if np.isfinite(r["D"]) else None}
