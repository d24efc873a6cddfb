"""Waiting for a sweep that is not in the store yet (`status --watch`, `analyze --watch`)."""

from __future__ import annotations

import pytest
from storehelp import trial

from equisweep.errors import UserError
from equisweep.store import open_store
from equisweep.store.appear import wait_for_sweep


class _Clock:
    """A fake clock: `sleep` advances it, and may make the sweep appear at a given time."""

    def __init__(self, appear_at=None, make=None):
        self.t, self.appear_at, self.make, self.slept = 0.0, appear_at, make, []

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.slept.append(s)
        self.t += s
        if self.appear_at is not None and self.t >= self.appear_at and self.make:
            self.make()
            self.make = None


@pytest.mark.parametrize("appear_at", [0.0, 3.0, 59.0])
def test_returns_once_the_sweep_appears(tmp_path, appear_at):
    uri = str(tmp_path / "results")  # not even the store exists before the sweep does

    def make():
        with open_store(uri).writer("late") as w:
            w.add_trial(trial("a"))

    clock = _Clock(appear_at, make)
    if appear_at == 0.0:
        make()
    said = []
    store = wait_for_sweep(uri, "late", 60, say=said.append, poll_s=1.0, clock=clock,
                           sleep=clock.sleep)
    assert "late" in store.sweeps()
    assert clock.t == pytest.approx(appear_at)
    assert len(said) == (0 if appear_at == 0.0 else 1)  # one line, however long the wait


def test_times_out_with_the_unknown_sweep_error(tmp_path):
    with open_store(tmp_path / "results").writer("other") as w:
        w.add_trial(trial("a"))
    clock = _Clock()
    with pytest.raises(UserError, match="no sweep 'missing'"):
        wait_for_sweep(str(tmp_path / "results"), "missing", 10, say=lambda s: None,
                       poll_s=3.0, clock=clock, sleep=clock.sleep)
    assert clock.t == pytest.approx(10)  # the last sleep is cut to the deadline


@pytest.mark.parametrize("name", ["../x", "a b", ""])
def test_a_name_that_cannot_be_a_sweep_fails_at_once(tmp_path, name):
    clock = _Clock()
    with pytest.raises(UserError):
        wait_for_sweep(str(tmp_path), name, 100, say=lambda s: None, clock=clock,
                       sleep=clock.sleep)
    assert clock.slept == []
