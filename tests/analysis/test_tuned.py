"""Tuned points: one trial per grid cell, the lowest final validation loss, independent of
row order; `--points all` pools every sample."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from equisweep.analysis import tuned
from equisweep.analysis.analyze import analyze_data
from equisweep.analysis.data import CELL_COLUMNS, load_sweep
from tests.analysis.synth import write_sweep

finite = st.floats(1e-6, 10.0, allow_nan=False)
val = st.one_of(finite, st.just(float("nan")))


@st.composite
def tables(draw):
    """Random sweeps: cells drawn from a small grid (so cells repeat), each row one search
    sample with a random validation loss (sometimes missing) and test loss."""
    n = draw(st.integers(1, 40))
    rows = []
    for i in range(n):
        rows.append({
            "key": f"k{draw(st.integers(0, 10**6)):07d}-{i}",
            "family": draw(st.sampled_from(["fam_a", "fam_b"])),
            "size": draw(st.sampled_from(['{"w": 2}', '{"w": 4}'])),
            "S": float(draw(st.sampled_from([100, 300]))),
            "D": float(draw(st.sampled_from([64, 256]))),
            "augment": draw(st.booleans()),
            "seed": draw(st.sampled_from([0.0, 1.0, float("nan")])),
            "val_loss": draw(val),
            "loss": draw(finite),
        })
    df = pd.DataFrame(rows)
    df["variant"] = df["family"] + np.where(df["augment"], "+aug", "")
    perm = draw(st.permutations(range(n)))
    return df, df.iloc[list(perm)].reset_index(drop=True)


def cell_of(df):
    return [tuple(r) for r in tuned.cell_frame(df).itertuples(index=False)]


@settings(max_examples=150, deadline=None)
@given(tables())
def test_one_point_per_cell_with_the_lowest_validation_loss(t):
    df, shuffled = t
    chosen, records = tuned.select(df)
    cells = cell_of(df)
    assert len(chosen) == len(set(cells)) == len(records)  # one per cell, every cell
    assert len(set(cell_of(chosen))) == len(chosen)
    by_cell = {}
    for c, (_, r) in zip(cells, df.iterrows()):
        by_cell.setdefault(c, []).append(r)
    rec = {r["key"]: r for r in records}
    for c, (_, row) in zip(cell_of(chosen), chosen.iterrows()):
        members = by_cell[c]
        vals = [m["val_loss"] for m in members if np.isfinite(m["val_loss"])]
        if vals:  # the minimum validation loss of its cell
            assert row["val_loss"] == min(vals)
            assert rec[row["key"]]["selected_by"] == "val_loss"
        else:  # no validation loss anywhere in the cell: the lowest fitted loss
            assert row["loss"] == min(m["loss"] for m in members)
            assert "no val_loss" in rec[row["key"]]["selected_by"]
        assert rec[row["key"]]["n_candidates"] == len(members)
        assert sorted(rec[row["key"]]["candidates"]) == sorted(m["key"] for m in members)
    # the choice does not depend on row order
    again, _ = tuned.select(shuffled)
    assert sorted(again["key"]) == sorted(chosen["key"])
    # --points all keeps every row, and still says which trial is each cell's tuned point
    pooled, rec_all = tuned.select(df, "all")
    assert len(pooled) == len(df) and rec_all == records


def test_fits_use_the_tuned_point_of_each_cell(store):
    write_sweep(store, "search", sizes={"gatr": [1e3, 4e3, 1.6e4, 6.4e4], "transformer":
                                        [2e3, 8e3, 3.2e4, 1.28e5]},
                steps=[100, 300, 1000, 3000], trajs=[1024], samples=3, noise=0.002)
    data = load_sweep(store, "search")
    fits = analyze_data(data, n_boot=0)
    pts = fits["points"]
    assert pts["mode"] == "tuned" and pts["n_cells"] == 32 and pts["n_points"] == 32
    # sample 0 is planted best on validation (the others are detuned by 50% and 100%)
    assert all(c["key"].endswith("-s0") and c["n_candidates"] == 3 for c in pts["cells"])
    assert set(pts["cells"][0]["cell"]) == set(CELL_COLUMNS)
    for v in fits["variants"].values():
        keys = v["approach3"]["data"]["keys"]
        assert len(keys) == 16 and all(k.endswith("-s0") for k in keys)
    pooled = analyze_data(data, n_boot=0, points="all")
    assert pooled["points"]["n_points"] == 96
    assert len(pooled["variants"]["gatr"]["approach3"]["data"]["keys"]) == 48


def test_grid_edge_flags_only_winners_at_an_end_of_what_their_cell_tried():
    from equisweep.analysis import grid_edge

    hp = {"a": {"lr": 1e-3, "wd": 0.1}, "b": {"lr": 3e-3, "wd": 0.1},
          "c": {"lr": 1e-2, "wd": 0.1}, "d": {"lr": 5e-3}}
    records = [{"key": "b", "variant": "v", "candidates": ["a", "b", "c"]},  # interior
               {"key": "c", "variant": "v", "candidates": ["a", "b", "c"]},  # top
               {"key": "d", "variant": "w", "candidates": ["d"]}]  # nothing searched
    flags = grid_edge.flags(records, hp)
    assert list(flags) == ["c"]
    assert flags["c"] == [{"param": "lr", "value": 1e-2, "edge": "top", "tried": [1e-3, 1e-2],
                           "n_tried": 3}]
    s = grid_edge.summary(records, flags)
    assert s["n_at_edge"] == 1 and s["by_variant"]["v"] == {"n_cells": 2, "at_edge": 1,
                                                            "top": 1, "bottom": 0}


@settings(max_examples=100, deadline=None)
@given(tables(), st.lists(st.sampled_from(["ds1", "ds2", None]), min_size=40, max_size=40),
       st.lists(st.sampled_from(["c1", "c2", None]), min_size=40, max_size=40))
def test_no_cell_mixes_datasets_or_cell_keys(t, datasets, cell_keys):
    """Two submissions of one sweep on different datasets (or training setups) share grid
    columns; their trials never compete in one cell, and rows without the identity columns
    (older stores) still group by the grid columns."""
    df, _ = t
    df = df.assign(dataset=datasets[:len(df)], cell_key=cell_keys[:len(df)])
    _, records = tuned.select(df)
    by_key = df.set_index("key")
    for rec in records:
        members = by_key.loc[rec["candidates"]]
        assert members["dataset"].fillna("").nunique() == 1
        assert members["cell_key"].fillna("").nunique() == 1
        assert rec["dataset"] == (members["dataset"].fillna("").iloc[0] or None)
