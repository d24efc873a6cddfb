"""The baselines table, `skill` in final(), and the best skill per variant."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from storehelp import metric, part_files, stored_files, trial

from equisweep.store.best import best_trials


def baseline(name, loss, split="test", dataset="rb-1", delta=4, **extra):
    row = {"dataset": dataset, "delta": delta, "split": split, "baseline": name,
           "loss": loss, "loss_se": loss / 10, "windows": 100, "trajectories": 10,
           "stride": 1}
    row.update(extra)
    return row


@pytest.fixture
def scored(store):
    """Sweep 'q': gatr a (test 0.6), gatr b (test 1.2), transformer+aug c (test 0.9), d with
    another dataset; constant velocity's test loss on rb-1 is 1.0."""
    store.write_baselines("q", [baseline("copy_last", 4.0), baseline("constant_velocity", 1.0),
                                baseline("constant_velocity", 2.0, split="val")])
    with store.writer("q") as w:
        for key, fam, aug, test, ds in (("a", "gatr", False, 0.6, "rb-1"),
                                        ("b", "gatr", False, 1.2, "rb-1"),
                                        ("c", "transformer", True, 0.9, "rb-1"),
                                        ("d", "gatr", False, 0.5, "rb-other")):
            w.add_trial(trial(key, family=fam, augment=aug, dataset=ds, delta=4))
            w.add_metrics([metric(key, 1, val_loss=2.0, val_loss_se=0.1, val_windows=40)])
            w.add_metrics([metric(key, 2, test_loss=test, test_loss_se=test / 20,
                                  test_windows=100, eval_flops=5e5,
                                  val_loss=2.0 if key == "d" else test + 0.05)])
            w.add_trial(trial(key, status="finished", family=fam, augment=aug, dataset=ds,
                              delta=4))
    return store


def test_baselines_table_round_trips_newest_row_wins(store):
    store.write_baselines("q", [baseline("constant_velocity", 1.0)])
    store.write_baselines("q", [baseline("constant_velocity", 0.5), baseline("copy_last", 3.0)])
    t = store.baselines("q")
    got = {(r["split"], r["baseline"]): r["loss"] for r in t.to_pylist()}
    assert got == {("test", "constant_velocity"): 0.5, ("test", "copy_last"): 3.0}
    assert set(t.column_names) >= {"sweep", "dataset", "delta", "split", "baseline", "loss",
                                   "loss_se", "windows"}
    # Plain Parquet where the layout says, readable without equisweep.
    files = part_files(store, "baselines/sweep=q")
    assert len(files) == 2
    assert pq.read_table(f"{store.root}/{files[0]}", filesystem=store.filesystem).num_rows >= 1
    assert "q" in store.sweeps()
    assert store.baselines("q", where="baseline == 'copy_last'").num_rows == 1


def test_bad_baseline_rows_are_refused_before_writing(store):
    with pytest.raises(ValueError, match="split"):
        store.write_baselines("q", [{"dataset": "rb", "delta": 1, "baseline": "x"}])
    with pytest.raises(ValueError, match="unknown baseline column"):
        store.write_baselines("q", [baseline("x", 1.0, colour="red")])
    assert stored_files(store) == []


def test_final_has_test_se_windows_and_skill_against_constant_velocity(scored):
    rows = {r["key"]: r for r in scored.final("q").to_pylist()}
    assert rows["a"]["skill"] == pytest.approx(1 - 0.6 / 1.0)
    assert rows["b"]["skill"] == pytest.approx(1 - 1.2)
    assert rows["c"]["skill"] == pytest.approx(0.1)
    assert rows["d"]["skill"] is None  # no baseline measured on its dataset
    assert rows["a"]["test_loss_se"] == pytest.approx(0.03)
    assert rows["a"]["test_windows"] == 100 and rows["a"]["eval_flops"] == 5e5
    assert scored.final("q", where="skill > 0.2").column("key").to_pylist() == ["a"]


def test_test_columns_come_from_the_row_that_measured_them(store):
    """A retried attempt re-reports a later step without test results: test_loss and its
    SE and window count still come together from the row that has them."""
    store.write_baselines("r", [baseline("constant_velocity", 2.0)])
    with store.writer("r") as w:
        w.add_trial(trial("a", status="finished", dataset="rb-1", delta=4))
        w.add_metrics([metric("a", 5, test_loss=1.0, test_loss_se=0.1, test_windows=77)])
        w.add_metrics([metric("a", 6, attempt=2)])
    row = store.final("r").to_pylist()[0]
    assert (row["test_loss"], row["test_loss_se"], row["test_windows"]) == (1.0, 0.1, 77)
    assert row["skill"] == pytest.approx(0.5)


def test_best_per_variant_carries_its_skill(scored):
    """The variant's tuned point (by val_loss) reports its test skill; a variant's trials
    on another dataset are chosen apart (their losses are of another task)."""
    best = best_trials(scored.final("q"), per="variant").to_pylist()
    rows = {r["family"]: r for r in best if r["dataset"] == "rb-1"}
    assert rows["transformer"]["skill"] == pytest.approx(0.1)
    assert rows["gatr"]["key"] == "a" and rows["gatr"]["skill"] == pytest.approx(0.4)
    assert [r["key"] for r in best if r["dataset"] == "rb-other"] == ["d"]


def test_empty_store_final_has_a_skill_column(store):
    assert "skill" in store.final("nothing").column_names


def test_query_final_and_status_show_skill(scored, run_cli):
    rc, out, _ = run_cli("query", "q", "--final", "--store", scored.uri)
    assert rc == 0
    header = out.splitlines()[0].split()
    assert "skill" in header and "test_loss_se" in header
    rc, out, _ = run_cli("query", "q", "--final", "--format", "json", "--store", scored.uri)
    assert rc == 0 and '"skill"' in out and '"test_windows"' in out
    rc, out, _ = run_cli("status", "q", "--store", scored.uri)
    assert rc == 0
    lines = out.splitlines()
    header = next(ln for ln in lines if "VARIANT" in ln).split()
    assert header[-2:] == ["TEST_LOSS_SE", "SKILL"]
    line = next(ln for ln in lines if "transformer+aug" in ln)
    assert float(line.split()[-1]) == pytest.approx(0.1)


def test_run_summary_prints_baselines_and_each_variants_skill(scored, capsys):
    from equisweep.sweep.cli_run import print_outcome

    print_outcome("q", scored.uri, [baseline("constant_velocity", 1.0),
                                    baseline("copy_last", 9.0, split="val")])
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "baseline constant_velocity: test loss 1 ± 0.1 (100 windows)"
    assert not any("copy_last" in ln for ln in out)  # val rows are not the test reference
    gatr = next(ln for ln in out if ln.startswith("gatr "))
    assert gatr.split()[1] == "a" and gatr.split()[-1] == "+0.400"
    assert next(ln for ln in out if ln.startswith("transformer+aug")).split()[-1] == "+0.100"
