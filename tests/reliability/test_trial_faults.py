"""A trial that crashes mid-training (exception, os._exit, SIGKILL) is retried from its last
checkpoint and its stored curve is the uninterrupted one; a NaN loss or an out-of-memory
error is recorded on its own trial while the others finish.

Faults are injected for real inside the Ray trial worker (tests/helpers/inject), once per
trial key, at the first reported step >= N.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from itertools import groupby

import pytest

from equisweep.spec import parse_spec
from tests.reliability.conftest import raw_rows, reliability_sweep
from tests.reliability.helpers import assert_curve_matches, reference_rows, run_with_fault

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["raise", "exit", "kill"])
def test_crashed_trial_resumes_from_checkpoint_and_loses_nothing(
        ray_session, tmp_path, monkeypatch, kind):
    # Transformer trials only (seconds each); two of them, both crash once at step 40:
    # rows 10, 20 (checkpoint), 30 are reported, then the process dies before row 40.
    spec_dict = reliability_sweep(f"crash-{kind}", samples=2)
    spec_dict["families"] = {"transformer": spec_dict["families"]["transformer"]}
    spec, summary, store, store_path, markers = run_with_fault(
        tmp_path, monkeypatch, f"crash-{kind}", f"{kind}@40", spec_dict)
    trials = {t.key: t for t in spec.trials()}
    assert len(trials) == 2
    assert summary["errors"] == 0

    # The fault really fired in every trial (the marker is written just before it).
    assert {p.name for p in markers.iterdir()} == set(trials)
    # Each trial's history: attempt 1 runs and crashes (`retrying`, with the cause from
    # Tune's own traceback, not a placeholder), attempt 2 runs and finishes; the summary
    # counts the retries.
    history = raw_rows(store_path, "trials")
    for key in trials:
        mine = [r for r in history if r["key"] == key]
        # (An attempt's `running` row is written at its start and again, with its node, at
        # its first report.)
        assert [k for k, _ in groupby((r["attempt"], r["status"]) for r in mine)] == [
            (1, "running"), (1, "retrying"), (2, "running"), (2, "finished")], (key, mine)
        crashed = [r for r in mine if r["status"] == "retrying"]
        assert crashed[0]["error"] and crashed[0]["error"] != "trial process failed", crashed
        placed = [r for r in mine if r["node"]]  # every row after the attempt's first report
        assert all(re.fullmatch(r".+ \([0-9a-f]{12}\)", r["node"]) for r in placed), mine
        assert {r["status"] for r in placed} == {"running", "retrying", "finished"}, mine
    assert summary["retried"] == len(trials)
    final = {t["key"]: t for t in store.trials(sweep=spec.name).to_pylist()}
    assert {k: t["status"] for k, t in final.items()} == dict.fromkeys(trials, "finished")

    # Raw files hold step 30 twice (crashed attempt + retry from the step-20 checkpoint);
    # the store's reading holds every step once, the retry's, bit-identical to a run
    # that never crashed.
    raw = Counter((r["key"], r["step"]) for r in raw_rows(store_path))
    for key in trials:
        assert raw[(key, 30)] == 2, raw
    metrics = store.metrics(sweep=spec.name).to_pylist()
    for key, trial in trials.items():
        mine = [r for r in metrics if r["key"] == key]
        assert [r["attempt"] for r in mine] == [1, 1, 2, 2, 2, 2]
        assert_curve_matches(mine, reference_rows(trial.to_dict()), key)
    assert store.check().ok


@pytest.mark.parametrize("kind", ["nan", "oom"])
def test_divergence_or_oom_is_recorded_on_its_trial_and_others_finish(
        ray_session, tmp_path, monkeypatch, kind):
    spec_dict = reliability_sweep(f"res-{kind}", steps=40, samples=1)
    probe = parse_spec(dict(spec_dict, store=str(tmp_path / "store")), source="probe")
    victim = next(t.key for t in probe.trials() if t.family == "transformer")
    spec, summary, store, store_path, markers = run_with_fault(
        tmp_path, monkeypatch, f"res-{kind}", f"{kind}@20", spec_dict, keys=[victim])
    assert [p.name for p in markers.iterdir()] == [victim]

    final = {t["key"]: t for t in store.final(sweep=spec.name).to_pylist()}
    assert len(final) == 2
    others = [k for k in final if k != victim]
    for key in others:
        assert final[key]["status"] == "finished" and final[key]["test_loss"] > 0
        steps = [r["step"] for r in store.metrics(sweep=spec.name).to_pylist()
                 if r["key"] == key]
        assert steps == [10, 20, 30, 40]
    bad = final[victim]
    history = [r for r in raw_rows(store_path, "trials") if r["key"] == victim]
    assert {r["attempt"] for r in history} == {1}  # recorded, not retried
    curve = [r for r in store.metrics(sweep=spec.name).to_pylist() if r["key"] == victim]
    if kind == "nan":
        assert bad["status"] == "diverged"
        assert "non-finite" in bad["error"]
        assert [r["step"] for r in curve] == [10, 20]
        # The store writes a non-finite loss as null ("no usable value"), never a number.
        loss = curve[-1]["train_loss"]
        assert loss is None or math.isnan(loss)
        assert curve[0]["train_loss"] > 0
    else:
        assert bad["status"] == "failed"
        assert bad["error"].startswith("out of memory after step ")
        assert "can't allocate memory" in bad["error"]  # torch's own allocator error
        assert [r["step"] for r in curve] == [10]
    assert bad["test_loss"] is None
