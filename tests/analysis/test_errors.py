"""Bad input gives one line naming what is wrong and exit code 2, never a traceback."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from equisweep.analysis.data import load_sweep
from equisweep.errors import UserError
from tests.helpers.cli import run_cli


@pytest.fixture
def run(monkeypatch, capsys):
    monkeypatch.delenv("EQUISWEEP_STORE", raising=False)

    return lambda *argv: run_cli(capsys, *argv)


def one_line_error(rc, err, *needles):
    assert rc == 2
    lines = [x for x in err.splitlines() if x.strip() and "%|" not in x]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture
def table(tmp_path):
    def make(rows, name="t.csv"):
        p = tmp_path / name
        pd.DataFrame(rows).to_csv(p, index=False)
        return p

    return make


def grid_rows(n_sizes=4, n_d=4):
    return [{"n": n, "d": d, "loss": 1 + 1 / n**0.3 + 1 / d**0.3}
            for n in np.logspace(3, 6, n_sizes) for d in np.logspace(3, 6, n_d)]


FIT = ("fit", "--n", "n", "--d", "d", "--loss", "loss", "--bootstrap", "0", "--starts", "20")


def test_fit_missing_file(run, tmp_path):
    one_line_error(*run(*FIT, "--csv", tmp_path / "nope.csv")[::2], "nope.csv", "no such file")


def test_fit_missing_column(run, table):
    p = table(grid_rows())
    rc, _, err = run("fit", "--csv", p, "--n", "params", "--d", "d", "--loss", "loss")
    one_line_error(rc, err, "'params'", "columns: n, d, loss")


@pytest.mark.parametrize("bad", [float("nan"), "oops"])
def test_fit_nan_or_text_loss(run, table, bad):
    rows = grid_rows()
    rows[3]["loss"] = bad
    rc, _, err = run(*FIT, "--csv", table(rows))
    one_line_error(rc, err, "'loss'", "non-numeric")


@pytest.mark.parametrize("col", ["loss", "n", "d"])
def test_fit_non_positive(run, table, col):
    rows = grid_rows()
    rows[0][col] = 0.0
    rows[1][col] = -1.0
    rc, _, err = run(*FIT, "--csv", table(rows))
    one_line_error(rc, err, f"'{col}'", "2 non-positive")


def test_fit_single_size(run, table):
    rc, _, err = run(*FIT, "--csv", table(grid_rows(n_sizes=1, n_d=10)))
    one_line_error(rc, err, "not enough data", "need ≥ 3 distinct N", "have 1")


def test_fit_too_few_points(run, table):
    rows = grid_rows(3, 3)[:5]
    rc, _, err = run(*FIT, "--csv", table(rows))
    one_line_error(rc, err, "not enough data")


def test_fit_drop_too_many(run, table):
    rc, _, err = run(*FIT, "--csv", table(grid_rows()), "--drop-highest", "16")
    one_line_error(rc, err, "--drop-highest 16")


def test_fit_empty_csv(run, tmp_path):
    p = tmp_path / "e.csv"
    p.write_text("")
    one_line_error(*run(*FIT, "--csv", p)[::2], "cannot read as CSV")


def test_analyze_unknown_sweep(run, quickstart_store):
    rc, _, err = run("analyze", "nope", "--store", quickstart_store.uri)
    one_line_error(rc, err, "no sweep 'nope'", "quick")


def test_analyze_missing_store(run, tmp_path):
    one_line_error(*run("analyze", "x", "--store", tmp_path / "none")[::2], "no results store")


class FakeStore:
    """The contract's read API over given frames (for columns the real store always has)."""

    uri = "fake://store"

    def __init__(self, final, metrics=None):
        self._final = pa.Table.from_pandas(pd.DataFrame(final))
        self._metrics = pa.Table.from_pandas(pd.DataFrame(metrics or {"key": [], "step": []}))

    def sweeps(self):
        return ["s"]

    def final(self, sweep=None):
        return self._final

    def metrics(self, sweep=None, where=None):
        return self._metrics

    def trials(self, sweep=None):
        return self._final


def final_rows(**over):
    base = {"key": ["a", "b"], "family": ["gatr", "gatr"], "n_params": [100, 1000],
            "flops_per_step": [1e5, 1e6], "steps": [10, 10], "train_trajectories": [8, 8],
            "augment": [False, False], "test_loss": [0.5, 0.4], "status": ["finished"] * 2}
    base.update(over)
    return base


def test_load_sweep_missing_columns():
    rows = final_rows()
    del rows["flops_per_step"]
    with pytest.raises(UserError, match="lacks column.*flops_per_step"):
        load_sweep(FakeStore(rows), "s")


@pytest.mark.parametrize("bad", [float("nan"), 0.0, -0.1])
def test_load_sweep_bad_loss_names_the_trial(bad):
    with pytest.raises(UserError, match="NaN or non-positive.*key b"):
        load_sweep(FakeStore(final_rows(test_loss=[0.5, bad])), "s")


def test_load_sweep_val_loss_fallback_and_unfinished_dropped():
    d = load_sweep(FakeStore(final_rows(test_loss=[0.5, None], val_loss=[0.6, 0.45],
                                        status=["finished", "finished"])), "s")
    assert d.final["loss"].tolist() == [0.5, 0.45]
    assert any("val_loss used" in n for n in d.notes)
    d2 = load_sweep(FakeStore(final_rows(status=["finished", "failed"])), "s")
    assert len(d2.final) == 1 and any("not finished" in n for n in d2.notes)


def test_load_sweep_nothing_finished():
    # One line that says why: how many trials, and in which states.
    with pytest.raises(UserError, match=r"nothing to analyse: no finished trial with a "
                                        r"finite loss among its 2: 1 failed, 1 running"):
        load_sweep(FakeStore(final_rows(status=["running", "failed"])), "s")


def test_analyze_refuses_nan_loss_from_real_store(run, store):
    from tests.analysis.synth import write_sweep

    def bad(w):
        w.add_trial({"key": "zz", "family": "gatr", "n_params": 10, "flops_per_step": 1e3,
                     "steps": 5, "train_trajectories": 8, "augment": False,
                     "status": "finished", "attempt": 1})
        w.add_metrics([{"key": "zz", "attempt": 1, "step": 5, "val_loss": -1.0,
                        "test_loss": -1.0}])

    write_sweep(store, "q", sizes={"gatr": [100, 200]}, steps=[10], trajs=[8],
                families=("gatr",), extra_trial=bad)
    rc, _, err = run("analyze", "q", "--store", store.uri, "--bootstrap", "0")
    one_line_error(rc, err, "non-positive", "zz")
