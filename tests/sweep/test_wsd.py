"""`schedule: wsd` on Ray: one trunk per share, branches as their own Tune trials that start
from the trunk's fork checkpoints, every length a trial of its own in the store."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from equisweep.models import FAMILIES
from equisweep.schedule import fork_step, lr_factor
from equisweep.spec import parse_spec, trunks
from equisweep.store import open_store
from equisweep.sweep.driver import run_sweep
from equisweep.sweep.forks import ForkStore
from equisweep.task import TaskConfig
from tests.reliability.conftest import raw_rows
from tests.reliability.helpers import COMPARED, reference_rows, same
from tests.sweep.conftest import tiny_sweep_dict

STEPS = [20, 40, 60]


def wsd_sweep(name: str, store, *, search=None, families=None, steps=STEPS, **training):
    d = tiny_sweep_dict(
        name, grid={"steps": steps, "train_trajectories": [8], "seed": [0]},
        search=search or {"method": "grid", "params": {"lr": 3e-3}},
        training={**tiny_sweep_dict()["training"], "eval_every": 5, "checkpoint_every": 10,
                  "schedule": "wsd", "cooldown": 0.25, "decay": "sqrt", **training})
    d["families"] = families or {"transformer": {"sizes": [{"width": 8, "depth": 1}]}}
    d["store"] = str(store)
    return parse_spec(d, source=f"{name}.yaml")


def by_key(rows):
    out: dict[str, list] = {}
    for r in rows:
        out.setdefault(r["key"], []).append(r)
    return out


def test_branches_fork_from_their_trunk_and_each_length_is_its_own_trial(ray_session, tmp_path):
    store_path = tmp_path / "store"
    spec = wsd_sweep("wsd-grid", store_path)
    trials = {t.key: t for t in spec.trials()}
    summary = run_sweep(spec, store_uri=str(store_path), progress=False)
    assert summary["errors"] == 0
    store = open_store(store_path)
    rows = {r["key"]: r for r in store.trials(sweep=spec.name).to_pylist()}
    assert rows.keys() == trials.keys()
    assert {r["status"] for r in rows.values()} == {"finished"}
    trunk = next(k for k, t in trials.items() if t.steps == max(STEPS))
    for key, t in trials.items():
        assert rows[key]["trunk"] == trunk
        assert rows[key]["fork_step"] == (None if key == trunk else fork_step(t.steps, 0.25))
        assert rows[key]["flops_per_step"] * rows[key]["steps"] == pytest.approx(t.total_flops)
        # the nominal count (models/nominal.py) is written by the real callback, same bound
        tokens = TaskConfig.from_dict(t.task).max_tokens()
        assert rows[key]["nominal_flops_per_step"] == FAMILIES[t.family].nominal(
            t.size, tokens, t.training["batch_size"]) > 0

    curves = by_key(store.metrics(sweep=spec.name).to_pylist())
    for key, t in trials.items():
        steps = [r["step"] for r in curves[key]]
        assert steps == list(range(5, t.steps + 1, 5)), (t.steps, steps)
        # The learning rate of every length is its own WSD curve (warmup, constant, sqrt decay).
        for r in curves[key]:
            expect = 3e-3 * lr_factor(r["step"] - 1, t.steps, 0.05, "wsd",
                                      warmup_steps=t.training["warmup_steps"],
                                      cooldown=0.25, decay="sqrt")
            assert r["lr"] == pytest.approx(expect, rel=1e-12, abs=1e-15)
        if key == trunk:
            continue
        # Up to the fork a branch's rows ARE the trunk's (wall time included: not retrained),
        # after it they are its own.
        fork = rows[key]["fork_step"]
        trunk_rows = {r["step"]: r for r in curves[trunk]}
        for r in curves[key]:
            shared = r["step"] <= fork
            assert same(r["wall_s"], trunk_rows[r["step"]]["wall_s"]) == shared, r["step"]
            if shared:
                for col in COMPARED + ("grad_norm", "equivariance_error"):
                    assert same(r[col], trunk_rows[r["step"]][col]), (col, r["step"])
        # ... and the whole curve is that of a standalone run of its length, bit for bit.
        ref = reference_rows(t.to_dict())
        assert [r["step"] for r in curves[key]] == sorted(ref)
        for r in curves[key]:
            for col in COMPARED:
                assert same(r[col], ref[r["step"]][col]), (t.steps, r["step"], col)

    # Spent FLOPs count the shared trunk steps once; fork checkpoints are gone once used.
    points = sum(max(r["flops"] for r in c) for c in curves.values())
    spent = store.flops_spent(spec.name)[spec.name]
    share = (60 + 5 + 10) / (20 + 40 + 60)
    assert spent / points == pytest.approx(share, rel=0.05)
    assert ForkStore(str(store_path), spec.name).ready() == set()
    # Every metric row was written once; resubmitting trains nothing.
    assert set(Counter((r["key"], r["step"]) for r in raw_rows(store_path)).values()) == {1}
    again = run_sweep(spec, store_uri=str(store_path), progress=False)
    assert again["to_run"] == 0 and again["already_done"] == 3


def test_optuna_samples_per_group_and_branches_inherit_the_trunk_sample(ray_session, tmp_path):
    store_path = tmp_path / "store"
    spec = wsd_sweep("wsd-optuna", store_path, steps=[20, 40],
                     search={"method": "optuna", "samples_per_cell": 2,
                             "params": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}}})
    summary = run_sweep(spec, store_uri=str(store_path), progress=False)
    assert summary["errors"] == 0 and summary["to_run"] == 4
    rows = open_store(store_path).trials(sweep=spec.name).to_pylist()
    assert len(rows) == 4 and {r["status"] for r in rows} == {"finished"}
    by_lr: dict[float, dict[int, dict]] = {}
    for r in rows:
        by_lr.setdefault(json.loads(r["hparams"])["lr"], {})[r["steps"]] = r
    assert len(by_lr) == 2  # two samples, each trained at both lengths
    for lengths in by_lr.values():
        assert sorted(lengths) == [20, 40]
        assert lengths[20]["trunk"] == lengths[40]["key"] == lengths[40]["trunk"]
        assert lengths[20]["fork_step"] == 15
    # Shared trunk steps counted once on both sides: the spend is the plan, exactly.
    store = open_store(store_path)
    assert store.flops_spent(spec.name)[spec.name] == pytest.approx(
        store.read_sweep_meta(spec.name)["planned_flops"], rel=1e-12)
    # Resubmitting with a third sample per cell adds one share (both lengths), nothing else.
    more = wsd_sweep("wsd-optuna", store_path, steps=[20, 40],
                     search={"method": "optuna", "samples_per_cell": 3,
                             "params": {"lr": {"loguniform": [1.0e-3, 1.0e-2]}}})
    from equisweep.sweep.plan import plan_sweep

    plan = plan_sweep(more, open_store(store_path), ForkStore(str(store_path), more.name))
    assert sorted(s.role for s in plan.slots) == ["branch", "trunk"]
    assert len({s.share for s in plan.slots}) == 1
    assert plan.planned_flops == pytest.approx(
        trunks.spend([trunks.Member(c.steps, c.flops_per_step, "x") for c in more.cells()],
                     0.25))


def test_a_saved_searcher_state_is_never_unpickled(tmp_path):
    """Tune's searcher state lives in the store, which others may write: restoring it
    refuses before reading a byte (a resumed sweep is planned from the store instead)."""
    import os
    import pickle

    from equisweep.sweep.searcher import CellSearcher

    class Planted:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'ran'}",)

    spec = wsd_sweep("old", tmp_path / "store", steps=[20])
    path = tmp_path / "searcher.pkl"
    path.write_bytes(pickle.dumps({"spec": Planted()}))
    with pytest.raises(RuntimeError, match="never restores pickled"):
        CellSearcher(spec, [], {}).restore(str(path))
    assert not (tmp_path / "ran").exists()


def test_stacked_trunks_publish_each_members_forks(ray_session, tmp_path):
    """`training.stack` under WSD: a group's trunks train as one stack (one Tune trial),
    each member publishing its own fork; every branch starts from its own trunk's fork and
    every length is its own trial, its curve that of a standalone run (float32: the
    stacked kernels sum in another order, so to 1e-4, not bit for bit)."""
    store_path = tmp_path / "store"
    spec = wsd_sweep("wsd-stack", store_path, steps=[20, 40], stack=2,
                     search={"method": "grid", "params": {"lr": {"choice": [2e-3, 5e-3]}}})
    trials = {t.key: t for t in spec.trials()}
    summary = run_sweep(spec, store_uri=str(store_path), progress=False)
    assert summary["errors"] == 0 and summary["unfinished"] == []
    dirs = [p.name for p in (store_path / "_tune" / spec.name).iterdir() if p.is_dir()]
    assert sum(d.startswith("stack2-") for d in dirs) == 1  # the two trunks, one Tune trial
    store = open_store(store_path)
    rows = {r["key"]: r for r in store.trials(sweep=spec.name).to_pylist()}
    assert rows.keys() == trials.keys()
    assert {r["status"] for r in rows.values()} == {"finished"}
    curves = by_key(store.metrics(sweep=spec.name).to_pylist())
    for key, t in trials.items():
        lr = t.hparams["lr"]
        trunk = next(k for k, o in trials.items() if o.steps == 40 and o.hparams["lr"] == lr)
        assert rows[key]["trunk"] == trunk
        assert rows[key]["fork_step"] == (None if key == trunk else 15)
        ref = reference_rows(t.to_dict())
        assert [r["step"] for r in curves[key]] == sorted(ref)
        for r in curves[key]:
            for col in ("train_loss", "val_loss", "test_loss"):
                if ref[r["step"]][col] is not None:
                    assert r[col] == pytest.approx(ref[r["step"]][col], rel=1e-4), (col, r)
            assert r["flops"] == ref[r["step"]]["flops"] and r["lr"] == ref[r["step"]]["lr"]
    assert ForkStore(str(store_path), spec.name).ready() == set()
    assert set(Counter((r["key"], r["step"]) for r in raw_rows(store_path)).values()) == {1}
    assert store.flops_spent(spec.name)[spec.name] == pytest.approx(
        store.read_sweep_meta(spec.name)["planned_flops"], rel=1e-12)
