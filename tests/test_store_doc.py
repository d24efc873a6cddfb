"""docs/STORE.md: every column it documents exists (and every stored column is documented),
and each of its pandas / DuckDB / Polars recipes, run as written on a real store with
retried attempts, gives exactly what `equisweep.store` gives."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from equisweep.store import open_store
from equisweep.store.schema import BASELINE_FIELDS, METRIC_FIELDS, TRIAL_FIELDS

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "STORE.md").read_text()


def recipes() -> dict[str, str]:
    return dict(re.findall(r"<!-- store-recipe: (\w+) -->\n```python\n(.*?)```", DOC, re.S))


def _documented(section: str) -> set[str]:
    body = DOC.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    names = set()
    for row in re.findall(r"^\| (.+?) \|", body, re.M):
        names |= set(re.findall(r"`(\w+)`", row))
    return names


@pytest.mark.parametrize("section,fields", [("trials/", TRIAL_FIELDS),
                                            ("metrics/", METRIC_FIELDS),
                                            ("baselines/", BASELINE_FIELDS)])
def test_every_column_is_documented_and_exists(section, fields):
    stored = {f.name for f in fields} | {"sweep", "_seq"}
    assert _documented(section) == stored


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp("doc")
    return base, _fill(open_store(base / "results"))


def _fill(store):
    """Two sweeps; trial 'b' failed once and re-reported step 2 on its retry."""

    def trial(key, status, attempt=1, lr=1e-3, family="gatr"):
        return {"key": key, "family": family, "size": {"width": 8, "depth": 2},
                "n_params": 100, "flops_per_step": 1e6, "steps": 3, "train_trajectories": 8,
                "augment": False, "seed": 0, "hparams": {"lr": lr}, "config": {"steps": 3},
                "status": status, "attempt": attempt, "node": "n1"}

    def metric(key, step, attempt=1, **extra):
        return {"key": key, "attempt": attempt, "step": step, "flops": step * 1e6,
                "train_loss": 1.0 / step + attempt, "val_loss": 2.0 / step + attempt, **extra}

    with store.writer("one") as w:
        for key, lr in (("a", 3e-3), ("b", 5e-4)):
            w.add_trial(trial(key, "running", lr=lr))
        w.add_metrics([metric("a", s) for s in (1, 2)] + [metric("a", 3, test_loss=0.5)])
        w.add_metrics([metric("b", s) for s in (1, 2)])
        w.add_trial(trial("a", "finished", lr=3e-3))
        w.add_trial(trial("b", "failed", lr=5e-4))
        w.add_trial(trial("b", "running", attempt=2, lr=5e-4))
    with store.writer("one") as w:  # the retry resumes from step 1's checkpoint
        w.add_metrics([metric("b", 2, attempt=2), metric("b", 3, attempt=2, test_loss=0.7)])
        w.add_trial(trial("b", "finished", attempt=2, lr=5e-4))
    with store.writer("two") as w:
        w.add_trial(trial("c", "running", family="transformer"))
        w.add_metrics([metric("c", 1)])
    return store


def _run(name: str, folder: Path, monkeypatch) -> dict:
    monkeypatch.chdir(folder)
    scope: dict = {}
    exec(compile(recipes()[name], f"docs/STORE.md:{name}", "exec"), scope)
    return scope


def _same(got, want: pd.DataFrame, columns):
    if not isinstance(got, pd.DataFrame):
        got = got.to_pandas()  # polars
    got = got[list(columns)].reset_index(drop=True)
    want = want[list(columns)].reset_index(drop=True)
    for c in columns:  # categorical sweep columns, pyarrow strings: compare values
        got[c] = got[c].astype(object) if got[c].dtype.name in ("category", "string") else got[c]
        want[c] = want[c].astype(object) if want[c].dtype.name in ("category", "string") \
            else want[c]
    pd.testing.assert_frame_equal(got, want, check_dtype=False)


TRIAL_COLS = ("sweep", "key", "status", "attempt", "hp_lr")
METRIC_COLS = ("sweep", "key", "step", "attempt", "val_loss", "test_loss")


def test_the_raw_log_is_what_the_doc_says(results):
    base, store = results
    raw = pd.read_parquet(base / "results" / "trials")
    assert len(raw) == 7 and (raw["status"] == "running").sum() == 4  # 3 trials, 7 rows
    assert len(store.trials()) == 3


@pytest.mark.parametrize("name", [n for n in sorted(recipes()) if n != "s3"])
def test_recipe_gives_what_equisweep_store_gives(name, results, monkeypatch):
    base, store = results
    scope = _run(name, base, monkeypatch)
    want_trials = store.trials().to_pandas()
    want_metrics = store.metrics().to_pandas()
    _same(scope["trials"], want_trials, TRIAL_COLS)
    _same(scope["metrics"], want_metrics, METRIC_COLS)
    assert list(want_metrics[want_metrics["key"] == "b"]["attempt"]) == [1, 2, 2]
    if "final" in scope:
        want = store.final().to_pandas()
        _same(scope["final"], want, ("sweep", "key", "status", "hp_lr", "step", "val_loss",
                                     "test_loss"))
    if "high_lr" in scope:
        assert list(scope["high_lr"]["key"]) == ["a"]


def test_the_object_store_recipe_on_a_real_s3_server(monkeypatch, tmp_path):
    """The s3 recipe, run as written against moto's server with only the bucket replaced,
    gives what `equisweep.store` gives for the same store."""
    from tests.reliability.s3 import moto_s3

    with moto_s3("doc-bucket"):
        store = _fill(open_store("s3://doc-bucket/equisweep"))
        code = recipes()["s3"]
        assert '"s3://my-bucket/equisweep"' in code
        scope: dict = {}
        exec(compile(code.replace("my-bucket", "doc-bucket"), "docs/STORE.md:s3", "exec"),
             scope)
        _same(scope["trials"], store.trials().to_pandas(), TRIAL_COLS)
        _same(scope["metrics"], store.metrics().to_pandas(), METRIC_COLS)


def test_recipes_cover_the_three_tools():
    assert {"pandas", "duckdb", "polars"} <= set(recipes())
    assert "PARTITION BY sweep, key ORDER BY _seq DESC" in recipes()["duckdb"]


def test_store_doc_states_the_report_location_rule_analyze_follows():
    """Issue 20: STORE.md said `<store>/reports/<name>/` while an s3 store got ./report-<name>/."""
    import os

    from equisweep.analysis.cli_analyze import default_out

    text = (Path(__file__).resolve().parents[1] / "docs" / "STORE.md").read_text()
    assert "<store>/reports/<name>/` for a local store" in text
    assert "./report-<name>/` on the machine that runs it" in text
    assert default_out("s3://b/p", "x") == os.path.join(".", "report-x")
    assert default_out("/data/store", "x") == os.path.join("/data/store", "reports", "x")
