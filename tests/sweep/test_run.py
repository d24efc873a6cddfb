"""End to end on the session's local Ray: a tiny sweep of both families with Optuna search."""

from __future__ import annotations

import pyarrow.dataset as pads
import pytest

from equisweep.spec import load_spec
from equisweep.store import open_store
from equisweep.sweep.driver import run_sweep

pytestmark = pytest.mark.slow


def _raw_metric_rows(store_path):
    return pads.dataset(str(store_path / "metrics"), format="parquet",
                        partitioning="hive").to_table().to_pylist()


def test_tiny_sweep_end_to_end_then_resubmit(ray_session, write_sweep, tmp_path):
    spec = load_spec(write_sweep())
    summary = run_sweep(spec, store_uri=spec.store, progress=False)
    assert summary["to_run"] == 4
    assert summary["errors"] == 0

    store = open_store(spec.store)
    trials = store.trials(sweep="tiny").to_pylist()
    assert len(trials) == 4
    assert {t["status"] for t in trials} == {"finished"}
    assert {t["family"] for t in trials} == {"gatr", "transformer"}
    assert all(t["augment"] for t in trials if t["family"] == "transformer")
    keys = {t["key"] for t in trials}
    assert len(keys) == 4  # Optuna drew distinct learning rates in each cell

    # The store holds exactly the rows the trials reported (steps 10 and 20), once each.
    raw = _raw_metric_rows(tmp_path / "store")
    assert sorted((r["key"], r["step"]) for r in raw) == sorted(
        (k, s) for k in keys for s in (10, 20))
    metrics = store.metrics(sweep="tiny").to_pylist()
    assert len(metrics) == 8
    for r in metrics:
        assert r["val_loss"] is not None and r["val_loss"] > 0
        assert r["flops"] > 0 and r["samples"] == r["step"] * 4
        assert r["equivariance_error"] is not None
    final = store.final(sweep="tiny").to_pylist()
    assert len(final) == 4
    assert all(f["test_loss"] is not None and f["test_loss"] > 0 for f in final)
    gatr_err = [m["equivariance_error"] for m in metrics if _family(trials, m) == "gatr"]
    tf_err = [m["equivariance_error"] for m in metrics if _family(trials, m) == "transformer"]
    assert max(gatr_err) < 1e-3 < min(tf_err)
    # The driver measured the zero-parameter baselines on the same windows; final() reads
    # each trial's skill against constant velocity from them.
    base = store.baselines(sweep="tiny").to_pylist()
    assert {(b["split"], b["baseline"]) for b in base} == {
        (s, n) for s in ("val", "test") for n in ("copy_last", "constant_velocity", "ballistic")}
    cv = next(b for b in base if (b["split"], b["baseline"]) == ("test", "constant_velocity"))
    for f in final:
        assert f["test_windows"] == cv["windows"] and f["test_loss_se"] > 0
        assert f["skill"] == pytest.approx(1 - f["test_loss"] / cv["loss"])
        assert f["dataset"] == cv["dataset"] and f["eval_flops"] > 0

    # TensorBoard (README): Tune's event files under <store>/_tune/<sweep>/, one run per
    # trial, each with the trial's reported losses.
    runs = sorted((tmp_path / "store" / "_tune" / "tiny").glob("*/events.out.tfevents.*"))
    assert len(runs) == 4
    for run in runs:
        assert _event_steps(run)["ray/tune/val_loss"] == [1, 2]  # its two reports

    again = run_sweep(spec, store_uri=spec.store, progress=False)
    assert again["to_run"] == 0 and again["already_done"] == 4
    assert len(_raw_metric_rows(tmp_path / "store")) == len(raw)
    assert store.baselines(sweep="tiny").num_rows == len(base)  # not written twice
    assert len(list((tmp_path / "store" / "baselines" / "sweep=tiny").glob("*.parquet"))) == 1


def _event_steps(path) -> dict[str, list[int]]:
    """tag -> report numbers of a TensorBoard event file (TFRecord framing: length, its
    CRC, the Event protobuf, its CRC), read with the protobufs tensorboardX ships."""
    import struct

    from tensorboardX.proto import event_pb2

    data, i, tags = path.read_bytes(), 0, {}
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i:i + 8])
        event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
        i += 12 + n + 4
        for value in event.summary.value:
            tags.setdefault(value.tag, []).append(event.step)
    return tags


def _family(trials, metric_row):
    return next(t["family"] for t in trials if t["key"] == metric_row["key"])
