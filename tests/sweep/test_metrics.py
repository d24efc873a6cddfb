"""The driver's sweep metrics reach Ray's metrics endpoint (what Prometheus scrapes and the
dashboard's Metrics view shows), with the numbers the sweep's tally holds."""

from __future__ import annotations

import time
import urllib.request
from types import SimpleNamespace

import pytest

from equisweep.sweep.progress import RayMetrics, SweepTally


def _trial(tid, family, augment=False):
    return SimpleNamespace(trial_id=tid, config={"trial": {"family": family, "augment": augment}})


def test_sweep_metrics_are_exported(ray_session):
    tally = SweepTally(total=5)
    a, b, c = _trial("a", "gatr"), _trial("b", "transformer", True), _trial("c", "gatr")
    for t in (a, b, c):
        tally.start(t)
    tally.result(a, {"flops": 2e9, "val_loss": 0.5})
    tally.result(b, {"flops": 1e9, "val_loss": 0.25})
    tally.end(a, failed=False)
    tally.result(c, {"flops": 1e9, "status": "failed"})
    tally.end(c, failed=True)
    metrics = RayMetrics(tally, "metricsweep", planned_flops=1e10)
    v = metrics.values()
    assert v["trials"] == {"pending": 2, "running": 1, "finished": 1, "failed": 1,
                           "diverged": 0}
    assert v["spent"] == 4e9 and v["best"] == {"gatr": ("loss", 0.5)}
    metrics.publish()

    port = ray_session.nodes()[0]["MetricsExportPort"]
    wanted = ('ray_equisweep_trials{', 'state="pending"', 'sweep="metricsweep"')
    deadline, text = time.monotonic() + 120, ""  # safety net: export runs every few seconds
    while time.monotonic() < deadline:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
        text = text.decode()
        lines = [ln for ln in text.splitlines() if all(w in ln for w in wanted)]
        if lines:
            break
        metrics.publish()
        time.sleep(0.5)
    assert lines and lines[0].endswith(" 2.0"), text[-2000:]
    spent = [ln for ln in text.splitlines()
             if ln.startswith("ray_equisweep_flops_spent{") and 'sweep="metricsweep"' in ln]
    assert spent and float(spent[0].rsplit(" ", 1)[1]) == 4e9
    best = [ln for ln in text.splitlines() if ln.startswith("ray_equisweep_best_val_loss{")
            and 'variant="gatr"' in ln and 'sweep="metricsweep"' in ln]
    assert best and float(best[0].rsplit(" ", 1)[1]) == 0.5


def test_a_branch_without_a_row_on_its_fork_step_counts_its_trunk_once():
    """Issue 20: the flops_spent gauge read 6.79e11 against a 5.98e11 plan, because a branch
    whose rows do not fall on its fork step counted the trunk's steps between its last
    re-reported row and the fork again. The trainable now sends the trunk's FLOPs at the
    fork (`fork_flops`, from the fork checkpoint): spent = trunk + the branch's own steps."""
    tally = SweepTally(2)
    per_step = 1e6
    trunk = SimpleNamespace(trial_id="trunk", config={"key": "t", "wsd": {"role": "trunk"}})
    branch = SimpleNamespace(trial_id="branch", config={
        "key": "b", "wsd": {"role": "branch", "fork_step": 25}})
    for step in (10, 20, 30, 40):  # rows every 10 steps; the fork at 25 falls between two
        tally.result(trunk, {"step": step, "flops": step * per_step})
    for step in (10, 20):  # the branch re-reports the trunk's rows up to its fork
        tally.result(branch, {"step": step, "flops": step * per_step})
    for step in (30, 32):  # then trains on from step 25 (a 32-step branch)
        tally.result(branch, {"step": step, "flops": step * per_step,
                              "fork_flops": 25 * per_step})
    assert tally.spent_flops == (40 + (32 - 25)) * per_step


def test_eta_follows_each_variants_own_pace():
    """Issue 20: the ETA extrapolated one sweep-wide FLOP rate (7 s shown, 74 s left), while
    families differ ~50x in FLOPs per second of wall. Each variant's FLOPs left go at its
    own measured pace."""
    tally = SweepTally(4, planned_by_group={"gatr": 1e12, "transformer": 1e10})
    gatr = SimpleNamespace(trial_id="g", config={"trial": {"family": "gatr"}})
    tf = SimpleNamespace(trial_id="t", config={"trial": {"family": "transformer"}})
    assert tally.eta_s() is None  # no pace measured yet
    tally.start(gatr)
    tally.start(tf)
    tally.result(gatr, {"step": 10, "flops": 2e11, "wall_s": 20.0})  # 1e10 FLOP/s
    # Until a transformer trial reports, its FLOPs left go at the pace measured so far.
    assert tally.eta_s() == pytest.approx((8e11 + 1e10) / 1e10 / 2)
    tally.result(tf, {"step": 10, "flops": 5e9, "wall_s": 25.0})  # 2e8 FLOP/s
    # gatr: 8e11 left at 1e10/s = 80 s; transformer: 5e9 left at 2e8/s = 25 s; 2 at once.
    assert tally.eta_s() == (80.0 + 25.0) / 2
    # A single sweep-wide rate would say (8e11 + 5e9) / (2.05e11 / 45 s) / 2 = 88 s.


def test_eta_follows_each_sizes_own_pace():
    """Issue 20: the ETA should come from measured wall time per family and size. The CPU
    study's last transformer trunks (8x1: per-step overheads, a low FLOP rate) got a 26 s
    ETA with ~6 minutes left, at a pace pooled over its sizes. Each (variant, size) goes at
    its own pace; a size not yet measured at its variant's; a variant not yet measured at
    the pooled pace."""
    from equisweep.sweep.progress import pace_group

    def trial(tid, width):
        return SimpleNamespace(trial_id=tid, config={"trial": {
            "family": "transformer", "augment": True, "size": {"width": width, "depth": 1}}})

    big, small, unseen = trial("b", 16), trial("s", 8), trial("u", 4)
    g = {t.trial_id: pace_group(t.config["trial"]) for t in (big, small, unseen)}
    assert g["b"] == 'transformer+aug {"depth": 1, "width": 16}' and len(set(g.values())) == 3
    tally = SweepTally(3, planned_by_group={g["b"]: 2e12, g["s"]: 2e10, g["u"]: 1e10,
                                            "gatr": 1e12})
    for t in (big, small):
        tally.start(t)
    tally.result(big, {"step": 10, "flops": 1e12, "wall_s": 100.0})  # 1e10 FLOP/s
    tally.result(small, {"step": 10, "flops": 1e10, "wall_s": 100.0})  # 1e8 FLOP/s
    # big: 1e12 left at 1e10/s = 100 s; small: 1e10 left at 1e8/s = 100 s; unseen: its
    # variant's pace (1.01e12 / 200 s); gatr: the pooled pace (the same here); 2 at once
    variant = 1.01e12 / 200.0
    assert tally.eta_s() == pytest.approx((100.0 + 100.0 + 1e10 / variant + 1e12 / variant) / 2)
    # pooled over the sizes (the old rule) small's 1e10 left would have counted as 2 s
    assert 1e10 / variant < 2.0
