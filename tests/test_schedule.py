"""Learning-rate schedules: WSD's shape, and the property forking relies on — a shorter WSD
run's schedule equals a longer one's up to the shorter run's fork step."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from equisweep.schedule import decay_steps, fork_step, lr_factor

lengths = st.integers(min_value=10, max_value=5000)
cooldowns = st.floats(min_value=0.05, max_value=0.5)
decays = st.sampled_from(["linear", "sqrt"])


@given(steps=lengths, cooldown=cooldowns, decay=decays, warm=st.integers(0, 5))
def test_wsd_warms_up_holds_then_decays_to_zero(steps, cooldown, decay, warm):
    fork = fork_step(steps, cooldown)
    assert fork + decay_steps(steps, cooldown) == steps and 0 < steps - fork <= steps
    assert abs(fork - (1 - cooldown) * steps) <= 0.5 + 1e-9
    f = [lr_factor(s, steps, 0.0, "wsd", warmup_steps=warm, cooldown=cooldown, decay=decay)
         for s in range(steps)]
    for s in range(min(warm, fork)):
        assert f[s] == pytest.approx((s + 1) / warm)
    assert all(v == 1.0 for v in f[warm:fork])
    tail = f[fork:]
    assert tail[0] == 1.0 and all(b < a for a, b in zip(tail, tail[1:]))
    # The next step would be at zero: the decay ends at 0 at `steps`.
    n = steps - fork
    last = 1 - ((n - 1) / n if decay == "linear" else math.sqrt((n - 1) / n))
    assert tail[-1] == pytest.approx(last)


@given(short=lengths, extra=st.integers(1, 5000), cooldown=cooldowns, decay=decays,
       warm=st.integers(0, 5))
def test_a_shorter_wsd_run_follows_the_longer_one_up_to_its_fork(short, extra, cooldown, decay,
                                                                  warm):
    long = short + extra
    for s in range(fork_step(short, cooldown)):
        assert lr_factor(s, short, 0.0, "wsd", warmup_steps=warm, cooldown=cooldown,
                         decay=decay) == lr_factor(s, long, 0.0, "wsd", warmup_steps=warm,
                                                   cooldown=cooldown, decay=decay)


def test_sqrt_decay_falls_faster_early_than_linear():
    kw = {"warmup_steps": 0, "cooldown": 0.5}
    lin = lr_factor(60, 100, 0.0, "wsd", decay="linear", **kw)
    sq = lr_factor(60, 100, 0.0, "wsd", decay="sqrt", **kw)
    assert lin == pytest.approx(0.8) and sq == pytest.approx(1 - math.sqrt(0.2))


def test_other_schedules_are_unchanged():
    assert lr_factor(50, 100, 0.0, "constant") == 1.0
    assert lr_factor(50, 100, 0.0, "linear") == pytest.approx(0.5)
    assert lr_factor(50, 100, 0.0, "cosine") == pytest.approx(0.5)
    assert lr_factor(4, 100, 0.1, "cosine") == pytest.approx(0.5)  # warmup: fraction of total
