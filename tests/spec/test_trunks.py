"""WSD trunks and branches in the spec: keys, shares, and the cost of a sweep counted two ways
(the points' standalone FLOPs, and the spend with shared trunk steps once)."""

from __future__ import annotations

import pytest

from equisweep.cli import main
from equisweep.schedule import decay_steps
from equisweep.spec import parse_spec, trunks
from equisweep.spec.trunks import Member, apply_budget, spend
from tests.sweep.conftest import tiny_sweep_dict

STEPS = [100, 200, 400, 800]


def wsd_spec(steps=STEPS, schedule="wsd", search=None, budget=None, **training):
    t = {"batch_size": 4, "schedule": schedule, **training}
    d = tiny_sweep_dict("wsd", grid={"steps": steps, "train_trajectories": [8], "seed": [0]},
                        training=t,
                        search=search or {"method": "random", "samples_per_cell": 2,
                                          "params": {"lr": {"loguniform": [1e-4, 1e-2]}}})
    if budget is not None:
        d["budget"] = {"flops": budget}
    return parse_spec(d)


def test_every_length_has_its_own_stable_key_and_branches_know_their_trunk():
    a, b = wsd_spec(), wsd_spec()
    keys = [t.key for t in a.trials()]
    assert keys == [t.key for t in b.trials()]  # resubmission: same keys
    assert len(set(keys)) == len(keys) == 2 * 2 * len(STEPS)  # 2 families x 2 samples
    ms = trunks.members(a)
    role = trunks.roles(ms, trunks.cooldown(a))
    shares = {m.share for m in ms}
    assert len(shares) == 4  # (family, sample): each one trunk
    for share in shares:
        mine = [m for m in ms if m.share == share]
        top = max(mine, key=lambda m: m.steps)
        assert sorted(m.steps for m in mine) == STEPS
        for m in mine:
            r = role[m.key]
            assert r["trunk"] == top.key
            assert r["fork_step"] == (None if m is top else m.steps - decay_steps(m.steps, 0.2))


def test_a_group_draws_one_sample_for_all_its_lengths():
    spec = wsd_spec()
    for fam in ("gatr", "transformer"):
        per_length = {}
        for t in spec.trials():
            if t.family == fam:
                per_length.setdefault(t.steps, []).append(t.hparams["lr"])
        assert len({tuple(v) for v in per_length.values()}) == 1, per_length
    # Under cosine each cell draws its own (the key of a cell seeds its sampler).
    cos = wsd_spec(schedule="cosine")
    lrs = {t.steps: t.hparams["lr"] for t in cos.trials() if t.family == "gatr"}
    assert len(set(lrs.values())) > 1


def test_wsd_trial_configs_carry_the_schedule_and_others_do_not():
    t = wsd_spec(decay="sqrt", cooldown=0.1, warmup=0.05).trials()[0]
    assert t.training["schedule"] == "wsd" and t.training["decay"] == "sqrt"
    assert t.training["cooldown"] == 0.1
    assert t.training["warmup_steps"] == 5  # 0.05 of the shortest length, 100
    cos = wsd_spec(schedule="cosine").trials()[0]
    assert not {"cooldown", "decay", "warmup_steps"} & set(cos.training)


@pytest.mark.parametrize("steps,cooldown,expect", [
    ([1000, 2000, 4000], 0.2, 0.66),          # doubling lengths x3 (study-facts §9)
    ([1000 * 2**i for i in range(8)], 0.2, 0.60),  # eight doubling lengths
    ([1000 * i for i in range(1, 11)], 0.2, 0.35),  # ten evenly spaced
    ([1000 * i for i in range(1, 11)], 0.1, 0.26),
])
def test_spend_matches_the_published_arithmetic(steps, cooldown, expect):
    ms = [Member(s, 1.0, "one") for s in steps]
    assert spend(ms, cooldown) / sum(steps) == pytest.approx(expect, abs=0.006)
    assert spend([Member(s, 1.0) for s in steps], cooldown) == sum(steps)  # standalone


def test_budget_counts_shared_trunk_steps_once():
    ms = [Member(s, 1.0, "g") for s in STEPS]  # spend 800 + 20 + 40 + 80 = 940, points 1500
    kept, skipped = apply_budget(ms, 940, 0.2)
    assert kept == ms and skipped == []
    kept, skipped = apply_budget(ms, 939, 0.2)  # the last branch no longer fits
    assert [m.steps for m in kept] == [100, 200, 400]
    # A new longest length extends the trunk and turns the old trunk into a branch.
    kept, _ = apply_budget([Member(400, 1.0, "g"), Member(800, 1.0, "g")], 880, 0.2)
    assert len(kept) == 2
    # Standalone trials (no share) cost their whole length.
    kept, _ = apply_budget([Member(s, 1.0) for s in STEPS], 940, 0.2)
    assert [m.steps for m in kept] == [100, 200, 400]
    forked = Member(400, 1.0, "g", forked=True)  # its fork checkpoint survives: decay only
    assert spend([forked], 0.2) == 80


def test_validate_prints_points_and_spend_and_caps_the_spend(tmp_path, capsys):
    spec = wsd_spec(search={"method": "grid"})
    cost = trunks.planned_spend(spec)
    assert cost["spend_flops"] / cost["points_flops"] == pytest.approx(940 / 1500)
    import yaml

    d = tiny_sweep_dict("wsd", grid={"steps": STEPS, "train_trajectories": [8], "seed": [0]},
                        training={"batch_size": 4, "schedule": "wsd"}, search={"method": "grid"})
    d["budget"] = {"flops": cost["spend_flops"]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(d))
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{cost['points_flops']:.3e} training FLOPs in total" in out
    assert f"training spends {cost['spend_flops']:.3e} FLOPs (0.63x the points" in out
    assert f"runs {len(spec.trials())} trials" in out and "skips 0" in out
