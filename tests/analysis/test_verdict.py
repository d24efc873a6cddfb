"""The report's first section: the study's three questions answered with numbers and
intervals, read against the zero-parameter baselines; the columns newer stores add
(test_loss_se, equivariant, hp_lr, baselines) are used when present."""

from __future__ import annotations

import re

import numpy as np
import pytest

from equisweep.analysis import verdict
from equisweep.analysis.analyze import analyze_data
from equisweep.analysis.data import load_sweep
from tests.analysis.synth import NewerStore, write_sweep

PCT = r"\d+(\.\d)?%"
# a loss change with its interval
CHANGE = PCT + r" \[[+-]?" + PCT + ", [+-]?" + PCT + r"\] (higher|lower)"


@pytest.fixture(scope="module")
def fits(full_store):
    data = load_sweep(NewerStore(full_store), "study")
    assert data.final["equivariant"].tolist().count(True) > 0
    assert np.isfinite(data.final["loss_se"]).all() and np.isfinite(data.final["lr"]).all()
    assert set(data.baselines["baseline"]) == {"copy_last", "constant_velocity"}
    return analyze_data(data, n_boot=20, seed=1)


def test_three_questions_answered_with_numbers_and_intervals(fits):
    v = fits["verdict"]
    assert v["equivariance_known"] and v["notes"] == []
    q = {x["id"]: x for x in v["questions"]}
    assert list(q) == ["data_efficiency", "compute", "allocation"]
    assert all(x["status"] == "answered" for x in q.values()), q
    assert re.search(r"With 64 training trajectories gatr's test loss is " + CHANGE
                     + " than transformer\\+aug's", q["data_efficiency"]["answer"])
    assert re.search(r"At equal training compute gatr's loss is " + CHANGE
                     + " than transformer\\+aug's", q["compute"]["answer"])
    assert "FLOPs" in q["compute"]["answer"]
    assert re.search(r"gatr: N_opt ∝ C\^\d\.\d\d \[\d\.\d\d, \d\.\d\d\]", q["allocation"]["answer"])
    # the measured ratio at each D equals the ratio of the two points' stored test losses
    (pair,) = q["data_efficiency"]["details"]
    assert pair["pair"] == ["gatr", "transformer+aug"]
    assert all(r["ci"][0] < r["ratio"] < r["ci"][1] for r in pair["per_D"])
    assert "constant_velocity 0.2 ± 0.008" in v["baselines"]


def test_undetermined_pairs_say_why(store):
    write_sweep(store, "few", sizes={"gatr": [1e3, 4e3], "transformer": [2e3, 8e3]},
                steps=[100, 300], trajs=[128])
    fits = analyze_data(load_sweep(NewerStore(store), "few"), n_boot=0)
    q = {x["id"]: x for x in fits["verdict"]["questions"]}
    assert q["allocation"]["status"] == "not determined"
    # no law, but the loss at equal cost is measured: answered from the points themselves
    assert q["compute"]["status"] == "answered"
    assert q["compute"]["answer"].startswith("Not determined from fits: gatr: not enough data")
    assert "Measured at equal cost" in q["compute"]["answer"]
    assert q["data_efficiency"]["status"] == "answered"  # measured, needs no fit


def test_pairs_put_the_equivariant_variant_first_without_naming_families():
    variants = {"a_plain": {"equivariant": False}, "z_equi": {"equivariant": True},
                "a_plain+aug": {"equivariant": False}}
    pairs, known = verdict.ordered_pairs(variants)
    assert known and pairs == [("z_equi", "a_plain"), ("z_equi", "a_plain+aug")]
    pairs, known = verdict.ordered_pairs({k: {"equivariant": None} for k in variants})
    assert not known and len(pairs) == 3


@pytest.mark.parametrize("r, ci, text", [
    (1.15, (1.12, 1.18), "15% [12%, 18%] higher"),
    (0.94, (0.91, 0.97), "6.0% [3.0%, 9.0%] lower"),
    (1.03, (0.98, 1.08), "3.0% [-2.0%, +8.0%] higher: not distinguishable from equal"),
    (0.5, None, "50% lower (no s.e. recorded)"),
])
def test_loss_changes_read_as_percentages(r, ci, text):
    assert verdict.fmt_change(r, ci) == text


def test_ratio_interval():
    r, (lo, hi) = verdict.ratio_interval(1.0, 0.1, 2.0, 0.2)
    assert r == 0.5 and lo < 0.5 < hi and lo * hi == pytest.approx(0.25)
    assert verdict.ratio_interval(1.0, None, 2.0, 0.2)[1] is None


def _axis_points():
    """Two variants' data axes (D 8 and 64, lengths 750 and 3000, two seeds at D 8) and a
    compute axis at D 25600 that must stay out of the data axis."""
    import pandas as pd

    rows = []
    for variant, N, gap in (("eq", 4e4, 1.0), ("non", 4.5e4, 2.0)):
        for D in (8.0, 64.0):
            for S in (750.0, 3000.0):
                for seed in ((0, 1) if D == 8 else (0,)):
                    # the non-equivariant variant's gap at D 8 shrinks with length; seed 1 is
                    # better than seed 0 and must not be picked
                    loss = 0.01 * (gap if (D == 8 and S == 750) else 1.0) * (0.5 if seed else 1)
                    rows.append({"variant": variant, "N": N, "S": S, "D": D, "seed": seed,
                                 "val_loss": loss, "loss": loss, "loss_se": 0.01 * loss,
                                 "epochs": S * 8 / (23 * D), "key": f"{variant}{D:g}{S:g}{seed}"})
        for S in (1000.0, 16000.0):
            rows.append({"variant": variant, "N": N, "S": S, "D": 25600.0, "seed": 0,
                         "val_loss": 1e-3, "loss": 1e-3, "loss_se": 1e-5, "epochs": 0.1,
                         "key": f"{variant}c{S:g}"})
    return pd.DataFrame(rows)


def test_the_gap_is_read_against_passes_over_the_train_set():
    """Question 1's second half (does a gap close as epochs grow?): at each train-set size of
    the data axis, the ratio at every length both variants ran, lowest seed, with epochs."""
    rows, text = verdict._gap_by_passes("eq", "non", _axis_points(), sigma=0.0)
    assert [(r["D"], r["S"]) for r in rows] == [(8, 750), (8, 3000), (64, 750), (64, 3000)]
    by = {(r["D"], r["S"]): r for r in rows}
    assert by[(8, 750)]["ratio"] == pytest.approx(0.5)  # eq 0.01 vs non 0.02 (seed 0's)
    assert by[(8, 3000)]["ratio"] == pytest.approx(1.0)
    assert by[(8, 750)]["epochs"] == pytest.approx(750 * 8 / (23 * 8))
    assert all(r["ci"][0] < r["ratio"] < r["ci"][1] for r in rows)
    assert text.startswith("with 8 trajectories, eq's loss is 0.50× [")
    assert "non's at 32.6 epochs and 1.00× [" in text and text.endswith("at 130")
    # run-to-run noise widens every interval
    wide, _ = verdict._gap_by_passes("eq", "non", _axis_points(), sigma=0.05)
    assert all(w["ci"][0] < r["ci"][0] and w["ci"][1] > r["ci"][1] for w, r in zip(wide, rows))
