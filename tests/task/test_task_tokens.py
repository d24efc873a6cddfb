"""`TaskConfig.max_tokens()` (what trial FLOPs are counted at) against generated scenes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from equisweep.task.config import SHAPE_KINDS, TaskConfig
from equisweep.task.simulate import sample_scene


def _tokens(scene) -> int:
    return sum(len(m) for m in scene.meshes)


@pytest.mark.parametrize("kind", SHAPE_KINDS)
@pytest.mark.parametrize("vertices", range(4, 17))
def test_max_tokens_is_the_largest_scene(kind, vertices):
    """With one shape and a fixed body count every scene is the largest one."""
    task = TaskConfig(bodies=(3, 3), vertices=vertices, shapes=(kind,)).validate()
    scene = sample_scene(np.random.default_rng(vertices), task)
    assert _tokens(scene) == task.max_tokens()


@settings(max_examples=25, deadline=None)
@given(shapes=st.lists(st.sampled_from(SHAPE_KINDS), min_size=1, max_size=5, unique=True),
       vertices=st.integers(4, 40), lo=st.integers(1, 3), extra=st.integers(0, 2),
       seed=st.integers(0, 2**32 - 1))
def test_no_scene_exceeds_max_tokens(shapes, vertices, lo, extra, seed):
    task = TaskConfig(bodies=(lo, lo + extra), vertices=vertices, shapes=tuple(shapes)).validate()
    rng = np.random.default_rng(seed)
    assert max(_tokens(sample_scene(rng, task)) for _ in range(3)) <= task.max_tokens()
