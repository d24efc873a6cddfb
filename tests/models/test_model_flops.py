"""count_flops equals torch's FlopCounterMode on a real training step exactly, for every
family in the registry at the small sizes of its ladder (attention under the math SDPA
backend, which FlopCounterMode can see on CPU)."""

from __future__ import annotations

import pytest

from equisweep.models import count_flops
from tests.helpers.families import ALL, case_id, family_cases, small_sizes
from tests.helpers.flops import measured_flops

CASES = family_cases()


@pytest.mark.parametrize("family,size", CASES, ids=[case_id(c) for c in CASES])
@pytest.mark.parametrize("tokens", [12, 31])
def test_count_flops_matches_flop_counter(family, size, tokens):
    expected = count_flops(family, size, tokens=tokens, batch_size=3)
    got = measured_flops(family, size, tokens, 3)
    assert expected == got, (expected, got)  # exact: the count is of what runs


@pytest.mark.parametrize("family", ALL)
def test_flops_grow_with_tokens_batch_and_size(family):
    sizes = small_sizes(family)
    small, big = sizes[0], sizes[-1]
    f = count_flops(family, small, tokens=16, batch_size=2)
    doubled = count_flops(family, small, tokens=16, batch_size=4)
    assert 1.8 * f < doubled <= 2 * f  # token-independent work does not grow with the batch
    assert count_flops(family, small, tokens=32, batch_size=2) > 2 * f  # pairs: T^2
    assert count_flops(family, big, tokens=16, batch_size=2) > f
