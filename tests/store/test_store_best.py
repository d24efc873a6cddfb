"""`store.best.best_trials` (the analysis' tuned-point rule applied to store rows),
`equisweep best` and `query --curves`."""

from __future__ import annotations

import json
import math

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from storehelp import metric, trial

from equisweep.store.best import CELL, VARIANT, best_trials

_rows = st.lists(st.fixed_dictionaries({
    "family": st.sampled_from(["gatr", "transformer"]),
    "steps": st.sampled_from([10, 20]),
    "augment": st.booleans(),
    "status": st.sampled_from(["finished", "finished", "failed", "diverged", "running"]),
    "val_loss": st.one_of(st.none(), st.just(math.nan),
                          st.floats(0.001, 10, allow_nan=False)),
    "test_loss": st.one_of(st.none(), st.floats(0.001, 10, allow_nan=False)),
}), max_size=30)


def _finite(v) -> bool:
    return v is not None and math.isfinite(v)


def _final(rows):
    base = {"sweep": "s", "size": '{"width": 8}', "train_trajectories": 16, "seed": 0,
            "test_loss": None}
    return pa.Table.from_pylist([{**base, "key": f"k{i:02d}", **r} for i, r in enumerate(rows)],
                                schema=SCHEMA)


SCHEMA = pa.schema([("sweep", pa.string()), ("size", pa.string()),
                    ("train_trajectories", pa.int64()), ("seed", pa.int64()),
                    ("test_loss", pa.float64()), ("key", pa.string()), ("family", pa.string()),
                    ("steps", pa.int64()), ("augment", pa.bool_()), ("status", pa.string()),
                    ("val_loss", pa.float64())])


@settings(max_examples=200, deadline=None)
@given(_rows, st.sampled_from(["cell", "variant"]))
def test_best_is_the_lowest_val_loss_of_finished_trials_per_group(rows, per):
    """Lowest finite val_loss wins; trials without one rank after, by the fitted loss
    (test_loss, else val_loss); ties to the smaller key; unfinished trials never win."""
    final = _final(rows)
    picked = best_trials(final, per=per).to_pylist()
    group = CELL if per == "cell" else VARIANT

    def loss(r):
        return r["test_loss"] if _finite(r["test_loss"]) else r["val_loss"]

    eligible = [r for r in final.to_pylist() if r["status"] == "finished" and _finite(loss(r))]
    expect = {}
    for r in sorted(eligible, key=lambda r: (0, r["val_loss"], r["key"]) if _finite(r["val_loss"])
                    else (1, loss(r), r["key"])):
        expect.setdefault(tuple(r[c] for c in group), r["key"])
    assert {tuple(r[c] for c in group): r["key"] for r in picked} == expect
    assert len(picked) == len(expect)  # one row per group


def test_best_rejects_an_unknown_grouping():
    from equisweep.errors import UserError

    with pytest.raises(UserError, match="--per"):
        best_trials(_final([]), per="family")


@pytest.fixture
def tuned(store):
    """Sweep 'tune': two cells (steps 10, 20), two learning rates each."""
    with store.writer("tune") as w:
        for key, steps, lr, val in (("a", 10, 1e-3, 0.5), ("b", 10, 3e-3, 0.4),
                                    ("c", 20, 1e-3, 0.2), ("d", 20, 3e-3, 0.3)):
            w.add_trial(trial(key, status="finished", steps=steps, hparams={"lr": lr}))
            w.add_metrics([metric(key, s, val_loss=val + 1 / s) for s in (1, 2)])
            w.add_metrics([metric(key, 3, val_loss=val, test_loss=val * 1.1)])
    return store


def test_best_cli_per_cell_and_variant(tuned, run_cli):
    store = tuned.uri
    rc, out, err = run_cli("best", "tune", "--store", store, "--format", "json")
    assert rc == 0, err
    rows = json.loads(out)
    assert [(r["key"], r["steps"], r["val_loss"]) for r in rows] == [("b", 10, 0.4),
                                                                     ("c", 20, 0.2)]
    assert rows[0]["hparams"] == {"lr": 3e-3} and rows[0]["hp_lr"] == 3e-3
    # each cell tried lr 1e-3 and 3e-3: its winner sits at an edge of that range
    assert [r["at_grid_edge"] for r in rows] == ["lr=0.003 (top of 0.001–0.003)",
                                                 "lr=0.001 (bottom of 0.001–0.003)"]
    rc, out, _ = run_cli("best", "tune", "--store", store, "--per", "variant",
                         "--format", "csv")
    assert rc == 0 and out.splitlines()[1].startswith('"tune","c"')
    rc, out, _ = run_cli("best", "tune", "--store", store)
    assert out.splitlines()[0].split()[:3] == ["sweep", "key", "family"]
    rc, _, err = run_cli("best", "nope", "--store", store)
    assert rc == 2 and "no sweep 'nope' in results store" in err


def test_query_curves_are_every_row_of_the_chosen_trials(tuned, run_cli):
    rc, out, err = run_cli("query", "tune", "--store", tuned.uri, "--curves",
                           "--where", "steps == 20 and val_loss < 0.25", "--format", "json")
    assert rc == 0, err
    rows = json.loads(out)
    assert [(r["key"], r["step"]) for r in rows] == [("c", 1), ("c", 2), ("c", 3)]
    assert all(r["family"] == "gatr" and r["steps"] == 20 for r in rows)
    rc, out, err = run_cli("query", "tune", "--store", tuned.uri, "--curves",
                           "--where", "steps == 99")
    assert rc == 0 and "(no rows)" in err
