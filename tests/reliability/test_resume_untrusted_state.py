"""`equisweep resume` never loads Tune's pickled experiment state, and a cut Tune state
cannot lose trials: the resumed run is rebuilt from the recorded spec and the store.

The store is that of a sweep whose driver was stopped: one trial never started, the other
was interrupted after its step-20 checkpoint (rows 10 and 20 stored, status `running`,
its weights-only checkpoint in Tune's folder). Tune's folder also holds what an attacker
with write access to a shared store would plant — `tuner.pkl`, `trainable.pkl`, a searcher
state and a newer "checkpoint" of the interrupted trial, each a pickle that runs a command
when loaded — and an experiment state cut in half, as a full disk leaves it.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from datetime import datetime, timezone

import pytest
import torch

from equisweep import cli
from equisweep.spec import parse_spec
from equisweep.store import open_store
from equisweep.store.schema import REPORTED_METRICS, trial_columns
from equisweep.sweep import prior_checkpoints
from equisweep.train import CHECKPOINT_FILE, iter_trial
from tests.reliability.conftest import reliability_sweep
from tests.reliability.helpers import assert_curve_matches, reference_rows

pytestmark = pytest.mark.slow


class _Planted:
    """Unpickling this runs `touch <marker>`."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _interrupt_after_checkpoint(store_path, spec, trial, tune_root, at: int = 20) -> None:
    """Store and Tune folder as a driver leaves them when stopped after `trial`'s step-`at`
    checkpoint: its rows up to `at` (attempt 1), status running, the tagged checkpoint."""
    threads = torch.get_num_threads()
    os.environ["OMP_NUM_THREADS"] = "1"  # as a 1-CPU Ray trial (bit-identical numbers)
    try:
        rows, work = [], store_path.parent / "work"
        for emit in iter_trial(trial.to_dict(), checkpoint_dir=work):
            rows.append(emit.row)
            if emit.checkpoint_dir and emit.row["step"] == at:
                folder = tune_root / f"old-{trial.key[:8]}_00000" / "checkpoint_000000"
                shutil.copytree(emit.checkpoint_dir, folder)
                prior_checkpoints.tag(str(folder), trial.key, at)
                break
    finally:
        os.environ.pop("OMP_NUM_THREADS", None)
        torch.set_num_threads(threads)
    w = open_store(store_path).writer(spec.name)
    w.add_trial({**trial_columns(trial.key, trial.to_dict(), n_params=trial.n_params,
                                 flops_per_step=trial.flops_per_step,
                                 equivariant=trial.equivariant),
                 "sweep": spec.name, "status": "running", "attempt": 1, "node": "n1",
                 "error": "", "started_at": datetime.now(timezone.utc), "ended_at": None})
    w.add_metrics([{"sweep": spec.name, "key": trial.key, "attempt": 1, "step": r["step"],
                    **{m: r.get(m) for m in REPORTED_METRICS if m != "step"}} for r in rows])
    w.close()


def test_resume_never_unpickles_the_store_and_completes_a_cut_tune_state(
        ray_session, tmp_path, monkeypatch):
    name = "planted"
    store_path = tmp_path / "store"
    d = reliability_sweep(name, steps=40, samples=1)
    spec = parse_spec(dict(d, store=str(store_path)), source=f"{name}.yaml")
    first, second = sorted(spec.trials(), key=lambda t: t.key)
    tune_root = store_path / "_tune" / name
    tune_root.mkdir(parents=True)
    _interrupt_after_checkpoint(store_path, spec, second, tune_root)
    open_store(store_path).write_sweep_meta(name, {"name": name, "spec": spec.raw,
                                                  "source": spec.source, "data_dir": None})

    marker = tmp_path / "planted-code-ran"
    payload = pickle.dumps(_Planted(marker))
    for planted in ("tuner.pkl", "trainable.pkl", "searcher-state-2026-01-01_00-00-00.pkl"):
        (tune_root / planted).write_bytes(payload)
    state = json.dumps({"trial_data": [["x" * 200, "y" * 200]] * 4, "runner_data": {}})
    (tune_root / "experiment_state-2026-01-01_00-00-00.json").write_text(state[:len(state) // 2])
    # A newer "checkpoint" of the interrupted trial that is a pickle carrying code.
    evil = tune_root / f"evil-{second.key[:8]}_00001" / "checkpoint_000001"
    evil.mkdir(parents=True)
    torch.save({"step": 30, "model": _Planted(marker)}, evil / CHECKPOINT_FILE)
    prior_checkpoints.tag(str(evil), second.key, 30)

    monkeypatch.delenv("EQUISWEEP_FAULT", raising=False)
    try:
        rc = cli.main(["resume", name, "--store", str(store_path)])
    finally:
        assert not marker.exists(), "resume ran code planted in the store"
    assert rc == 0

    store = open_store(store_path)
    trials = {r["key"]: r for r in store.trials(sweep=name).to_pylist()}
    assert {k: r["status"] for k, r in trials.items()} == {first.key: "finished",
                                                          second.key: "finished"}
    metrics = store.metrics(sweep=name).to_pylist()
    assert sorted((r["key"], r["step"]) for r in metrics) == sorted(
        (t.key, s) for t in (first, second) for s in (10, 20, 30, 40))
    # The interrupted trial continued from its real step-20 checkpoint (the planted step-30
    # one was refused): rows up to 20 are the first run's, the rest a later attempt.
    resumed = sorted((r for r in metrics if r["key"] == second.key), key=lambda r: r["step"])
    assert [r["attempt"] for r in resumed] == [1, 1, 2, 2]
    assert trials[second.key]["attempt"] == 2
    for t in (first, second):
        assert_curve_matches(sorted((r for r in metrics if r["key"] == t.key),
                                    key=lambda r: r["step"]),
                             reference_rows(t.to_dict()), t.key)
