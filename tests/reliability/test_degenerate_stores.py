"""Numerics and degenerate stores (issue 21, class 5): a store where every trial diverged,
one that holds a single trial, one size per family, finished trials without a finite loss,
losses without any variance, and `fit --csv` tables that cannot determine a law. Every
reader (`status`, `best`, `analyze`, `fit`) either answers, or says what is missing in one
line and exits 2; none crashes, and every JSON it writes is strict (no NaN/Infinity)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from equisweep.analysis import strict_json
from equisweep.store import open_store
from tests.analysis.synth import write_sweep
from tests.helpers.cli import run_cli


def strict_loads(text: str):
    def refuse(token):
        raise ValueError(f"non-strict JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def _trial(key, fam, N, S, status, **extra):
    return {
        "key": key,
        "family": fam,
        "size": {"n": N},
        "n_params": N,
        "flops_per_step": 1e3 * N,
        "steps": S,
        "train_trajectories": 8,
        "augment": False,
        "seed": 0,
        "hparams": {"lr": 1e-3},
        "attempt": 1,
        "status": status,
        **extra,
    }


def diverged(store):
    with store.writer("s") as w:
        for fam in ("gatr", "transformer"):
            for N in (1000, 5000):
                key = f"{fam}-{N}"
                w.add_metrics(
                    [
                        {
                            "key": key,
                            "attempt": 1,
                            "step": 50,
                            "samples": 400,
                            "flops": 5e7 * N,
                            "val_loss": math.nan,
                            "train_loss": math.inf,
                        }
                    ]
                )
                w.add_trial(_trial(key, fam, N, 100, "diverged", error="loss is NaN at step 50"))


def lossless(store):
    with store.writer("s") as w:
        for fam in ("gatr", "transformer"):
            for N in (1000, 5000):
                key = f"{fam}-{N}"
                w.add_trial(_trial(key, fam, N, 100, "finished"))
                w.add_metrics(
                    [
                        {
                            "key": key,
                            "attempt": 1,
                            "step": 100,
                            "samples": 800,
                            "flops": 1e5 * N,
                            "val_loss": math.nan,
                            "test_loss": math.nan,
                        }
                    ]
                )


def single(store):
    write_sweep(store, "s", sizes={"gatr": [2000]}, steps=[200], trajs=[128], families=("gatr",))


def one_size(store):
    write_sweep(
        store,
        "s",
        sizes={"gatr": [2000], "transformer": [3000]},
        steps=[200, 400, 800],
        trajs=[128],
    )


def flat(store):
    with store.writer("s") as w:
        for fam in ("gatr", "transformer"):
            for N in (1000, 5000, 20000):
                for S in (100, 300, 900):
                    key = f"{fam}-{N}-{S}"
                    w.add_trial(_trial(key, fam, N, S, "finished"))
                    w.add_metrics(
                        [
                            {
                                "key": key,
                                "attempt": 1,
                                "step": S,
                                "samples": 8 * S,
                                "flops": 1e3 * N * S,
                                "val_loss": 0.05,
                                "test_loss": 0.05,
                                "train_loss": 0.05,
                            }
                        ]
                    )


# store builder -> what `analyze` must say when it cannot answer (None: it answers)
CASES = {
    "every-trial-diverged": (
        diverged,
        "no finished trial with a finite loss among its 4: 4 diverged",
    ),
    "finished-without-a-loss": (lossless, "4 finished trial(s) have a NaN"),
    "single-trial": (single, None),
    "one-size-per-family": (one_size, None),
    "zero-variance": (flat, None),
}


def assert_one_line_error(rc, err, needle):
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0], lines[0]


@pytest.mark.parametrize("case", CASES)
def test_readers_of_a_degenerate_store_answer_or_say_what_is_missing(case, tmp_path, capsys):
    build, missing = CASES[case]
    root = tmp_path / "store"
    build(open_store(root))
    rc, out, err = run_cli(capsys, "status", "s", "--store", root, "--json")
    assert rc == 0, err
    strict_loads(out)
    rc, out, err = run_cli(capsys, "best", "s", "--store", root, "--format", "json")
    assert rc == 0, err
    rows = strict_loads(out)
    if missing and not rows:
        assert err.strip().startswith("(sweep 's': no finished trial with a finite loss"), err
    out_dir = tmp_path / "report"
    rc, out, err = run_cli(
        capsys,
        "analyze",
        "s",
        "--store",
        root,
        "--out",
        out_dir,
        "--bootstrap",
        "8",
        "--workers",
        "1",
        "--no-png",
    )
    if missing:
        assert_one_line_error(rc, err, missing)
        assert not out_dir.exists()  # nothing half-written
        return
    assert rc == 0, err
    fits = strict_loads((out_dir / "fits.json").read_text())
    page = (out_dir / "report.html").read_text()
    # what the data cannot determine is said, in fits.json and on the page
    statuses = {v["approach3"]["status"] for v in fits["variants"].values()}
    assert statuses <= {"ok", "weak", "undetermined"}
    if case != "one-size-per-family":
        assert statuses == {"undetermined"}
        assert "not determined" in page


def _table(tmp_path, name, rows):
    path = tmp_path / f"{name}.csv"
    path.write_text("N,S,L\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


LADDER = [(1000 * 2**i, 100 * 2**j, 1.0 / (1 + i + j)) for i in range(4) for j in range(3)]


@pytest.mark.parametrize(
    "name,rows,needle",
    [
        ("duplicated", LADDER + LADDER, None),
        ("constant-steps", [(n, 100, loss) for n, _, loss in LADDER], "distinct 'S' (--s)"),
        ("negative-loss", LADDER[:-1] + [(1000, 100, -0.5)], "non-positive"),
        ("nan-loss", LADDER[:-1] + [(1000, 100, "nan")], "NaN"),
        ("constant-loss", [(n, s, 0.5) for n, s, _ in LADDER], None),
    ],
)
def test_fit_csv_answers_or_names_the_column(name, rows, needle, tmp_path, capsys):
    csv = _table(tmp_path, name, rows)
    rc, out, err = run_cli(
        capsys,
        "fit",
        "--csv",
        csv,
        "--n",
        "N",
        "--s",
        "S",
        "--loss",
        "L",
        "--bootstrap",
        "8",
        "--workers",
        "1",
        "--json",
    )
    if needle:
        assert_one_line_error(rc, err, needle)
        return
    assert rc == 0, err
    result = strict_loads(out)
    assert result["status"] in ("ok", "weak", "undetermined")


finite_or_not = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    st.booleans(),
    st.none(),
    st.text(max_size=5),
)
nested = st.recursive(
    finite_or_not,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(nested)
def test_strict_json_never_writes_nan_and_keeps_every_finite_value(obj):
    text = strict_json.dumps(obj)
    back = strict_loads(text)

    def same(a, b):
        if isinstance(a, float) and not math.isfinite(a):
            return b is None
        if isinstance(a, dict):
            return set(a) == set(b) and all(same(a[k], b[k]) for k in a)
        if isinstance(a, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a == b and type(a) is type(b)

    assert same(obj, back)
