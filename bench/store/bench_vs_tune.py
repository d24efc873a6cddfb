"""Reading a 1,000-trial experiment: equisweep's store vs Ray Tune's ExperimentAnalysis.

Both sides hold the same results (the store is filled from the Tune experiment's own
result.json files). Timed: what a user does to get one row per trial with its last
result — `ExperimentAnalysis(path).dataframe()` vs `open_store(path).final()` — and the
full curves — `ExperimentAnalysis(path).trial_dataframes` vs `open_store(path).metrics()`.

    python bench/store/make_tune_experiment.py /tmp/tune_bench --trials 1000 --steps 1000
    python bench/store/bench_vs_tune.py /tmp/tune_bench/exp /tmp/tune_store
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from equisweep.store import open_store

COLUMNS = ("step", "samples", "flops", "wall_s", "train_loss", "val_loss", "lr", "grad_norm",
           "test_loss")


def fill_store(exp: Path, root: Path) -> None:
    store = open_store(root)
    dirs = sorted(p.parent for p in exp.glob("*/result.json"))
    with store.writer("tune", max_rows=100_000, max_delay_s=10**9) as w:
        for d in tqdm(dirs, desc="fill store"):
            rows = [json.loads(line) for line in (d / "result.json").read_text().splitlines()]
            key = rows[0]["trial_id"]
            w.add_trial({"key": key, "status": "running", "attempt": 1,
                         "hparams": rows[0]["config"]})
            w.add_metrics(pa.table({"key": [key] * len(rows), "attempt": [1] * len(rows),
                                    **{c: [r.get(c) for r in rows] for c in COLUMNS}}))
            w.add_trial({"key": key, "status": "finished", "attempt": 1,
                         "hparams": rows[0]["config"]})


def timed(fn, runs):
    out, times = None, []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times), times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("experiment", type=Path)
    ap.add_argument("store", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    logging.getLogger("ray").setLevel(logging.ERROR)
    from ray.tune import ExperimentAnalysis

    if not (args.store / "metrics").exists():
        fill_store(args.experiment, args.store)

    df, t_tune, tt = timed(lambda: ExperimentAnalysis(str(args.experiment)).dataframe(),
                           args.runs)
    final, t_eq, te = timed(lambda: open_store(args.store).final(), max(5, args.runs))
    assert final.num_rows == len(df), (final.num_rows, len(df))
    assert sorted(final.column("step").to_pylist()) == sorted(df["step"].tolist())
    print(f"last row per trial ({len(df)} trials): ExperimentAnalysis(...).dataframe() "
          f"median {t_tune:.2f}s {[round(x, 2) for x in tt]}; store.final() median "
          f"{t_eq:.3f}s {[round(x, 3) for x in te]}; speed-up {t_tune / t_eq:.0f}x")

    curves, t_tune, tt = timed(
        lambda: ExperimentAnalysis(str(args.experiment)).trial_dataframes, args.runs)
    rows = sum(len(v) for v in curves.values())
    m, t_eq, te = timed(lambda: open_store(args.store).metrics(), max(5, args.runs))
    assert m.num_rows == rows, (m.num_rows, rows)
    print(f"all curves ({rows:,} rows): ExperimentAnalysis(...).trial_dataframes median "
          f"{t_tune:.2f}s; store.metrics() median {t_eq:.3f}s {[round(x, 3) for x in te]}; "
          f"speed-up {t_tune / t_eq:.0f}x")


if __name__ == "__main__":
    main()
