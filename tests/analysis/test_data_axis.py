"""The data-efficiency fit's points: one training compute, one point per train-set size."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from equisweep.analysis.sections import best_per_d


@st.composite
def tables(draw):
    """Points of one variant on a random grid of (N, S, D) with 1-3 candidates per cell."""
    Ns = draw(st.lists(st.sampled_from([1e3, 3e3, 1e4, 3e4]), min_size=1, max_size=3, unique=True))
    Ss = draw(st.lists(st.sampled_from([300, 1000, 3000]), min_size=1, max_size=3, unique=True))
    Ds = draw(st.lists(st.sampled_from([25, 100, 400, 1600, 6400]), min_size=1, max_size=5,
                       unique=True))
    rows = []
    for N in Ns:
        for S in Ss:
            for D in draw(st.lists(st.sampled_from(Ds), min_size=1, unique=True)):
                for i in range(draw(st.integers(1, 3))):
                    val = draw(st.one_of(st.just(np.nan), st.floats(1e-4, 1.0)))
                    rows.append({"key": f"{N:g}-{S}-{D}-{i}", "N": N, "S": float(S),
                                 "D": float(D), "val_loss": val,
                                 "loss": draw(st.floats(1e-4, 1.0))})
    return pd.DataFrame(rows)


@settings(max_examples=200, deadline=None)
@given(tables())
def test_one_compute_the_most_train_set_sizes_and_the_best_per_size(t):
    got = best_per_d(t)
    # a single (N, S): one model trained for one length
    assert got[["N", "S"]].drop_duplicates().shape[0] == 1
    N, S = got["N"].iloc[0], got["S"].iloc[0]
    n_d = t.groupby(["N", "S"])["D"].nunique()
    assert n_d[(N, S)] == n_d.max()
    # ties go to the larger compute
    assert N * S == max(n * s for (n, s), k in n_d.items() if k == n_d.max())
    # every D of that (N, S), once, in order, each its lowest validation loss
    cell = t[(t["N"] == N) & (t["S"] == S)]
    assert got["D"].tolist() == sorted(cell["D"].unique())
    for _, r in got.iterrows():
        g = cell[cell["D"] == r["D"]]
        rank = np.where(np.isfinite(g["val_loss"]), g["val_loss"], g["loss"])
        assert rank.min() == (r["val_loss"] if np.isfinite(r["val_loss"]) else r["loss"])


def test_a_longer_run_at_the_largest_train_set_is_not_a_data_axis_point():
    # the CPU study's shape: a data axis at 1000 steps over five train sets, and a compute
    # axis at the largest train set whose 10000-step run reaches a far lower loss
    data = [{"key": f"d{D}", "N": 3e4, "S": 1000.0, "D": float(D), "val_loss": 0.005,
             "loss": 0.005} for D in (25, 100, 400, 1600, 6400)]
    compute = [{"key": f"c{S}", "N": N, "S": float(S), "D": 6400.0, "val_loss": 0.1 / S,
                "loss": 0.1 / S} for N in (1e3, 3e4) for S in (300, 3000, 10000)]
    got = best_per_d(pd.DataFrame(data + compute))
    assert got["key"].tolist() == ["d25", "d100", "d400", "d1600", "d6400"]


@settings(max_examples=100, deadline=None)
@given(tables(), st.lists(st.integers(0, 3), min_size=1, max_size=3, unique=True),
       st.randoms(use_true_random=False))
def test_seeds_are_not_candidates_each_d_takes_its_lowest_seed(t, seeds, rnd):
    """A second seed at some D (the CPU study runs two at its smallest train sets) must not
    be a second chance: the point is the lowest seed's, however the other seed did."""
    t = pd.concat([t.assign(seed=s, val_loss=[rnd.uniform(1e-4, 1) for _ in range(len(t))],
                            key=t["key"] + f"-s{s}") for s in seeds], ignore_index=True)
    got = best_per_d(t)
    assert (got["seed"] == min(seeds)).all()
    # and with the other seeds' rows removed, the same points
    alone = best_per_d(t[t["seed"] == min(seeds)])
    assert got["key"].tolist() == alone["key"].tolist()


def test_no_train_set_sizes_no_points():
    t = pd.DataFrame({"key": ["a"], "N": [1e3], "S": [100.0], "D": [np.nan],
                      "val_loss": [0.1], "loss": [0.1]})
    assert best_per_d(t).empty


def test_the_data_figure_joins_the_fitted_points_and_fades_the_rest(full_store):
    """Figure 2 draws, per variant, the data-efficiency fit's own points (one compute) as the
    line, and every other point of the variant faded: a longer run at some D is not read as
    a data-axis point."""
    from equisweep.analysis import tuned
    from equisweep.analysis.analyze import analyze_data
    from equisweep.analysis.data import load_sweep
    from equisweep.analysis.figures import fig_data

    data = load_sweep(full_store, "study")
    fits = analyze_data(data, n_boot=0, workers=1)
    points, _ = tuned.select(data.final, "tuned")
    fig = fig_data(data, fits, points)
    for v, info in fits["variants"].items():
        axis = best_per_d(points[points["variant"] == v])
        (line,) = [t for t in fig.data if t.name.startswith(f"{v} at fixed compute")
                   and t.xaxis == "x"]
        assert line.mode == "lines+markers"
        assert [c[0] for c in line.customdata] == axis["key"].tolist()
        assert list(line.x) == axis["D"].tolist() == info["data_efficiency"]["data"]["D"]
        (rest,) = [t for t in fig.data if t.name == f"{v} other sizes and lengths"
                   and t.xaxis == "x"]
        assert rest.marker.opacity < 0.5
        assert len(rest.x) + len(line.x) == int((points["variant"] == v).sum())
