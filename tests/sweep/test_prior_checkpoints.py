"""A rebuilt run continues a trial from its own checkpoint of an earlier run only where the
store holds that step's row: a driver killed between a checkpoint reaching Tune's folder and
its row reaching the store must not make the continued trial skip (lose) that row."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from equisweep.sweep import prior_checkpoints
from equisweep.train import load_checkpoint
from equisweep.trainer.checkpoint import save_checkpoint

KEY = "k" * 16


def _tune_folder(root, steps):
    for i, step in enumerate(steps):
        folder = root / "trial_dir" / f"checkpoint_{i:06d}"
        save_checkpoint(folder, {"step": step})
        prior_checkpoints.tag(str(folder), KEY, step)
    return str(root)


@settings(max_examples=25, deadline=None)
@given(steps=st.lists(st.integers(1, 60), min_size=1, max_size=5, unique=True),
       max_step=st.one_of(st.none(), st.integers(0, 70)))
def test_the_newest_checkpoint_the_store_has_caught_up_with(tmp_path_factory, steps, max_step):
    root = _tune_folder(tmp_path_factory.mktemp("tune"), steps)
    got = prior_checkpoints.fetch_latest(root, KEY, max_step)
    usable = [s for s in steps if max_step is not None and s <= max_step]
    if not usable:
        assert got is None
    else:
        assert load_checkpoint(got)["step"] == max(usable)


@pytest.mark.parametrize("max_step, expected", [(20, 20), (19, 10), (9, None), (None, None)])
def test_a_checkpoint_ahead_of_the_store_is_passed_over(tmp_path, max_step, expected):
    root = _tune_folder(tmp_path, [10, 20])
    got = prior_checkpoints.fetch_latest(root, KEY, max_step)
    assert (load_checkpoint(got)["step"] if got else None) == expected
