"""The transformer's own sizes: its keys and defaults, the study ladder, counts off the
ladder (Fourier features, full multi-head attention, other MLP ratios)."""

from __future__ import annotations

import math

import pytest

from equisweep.errors import UserError
from equisweep.models import FAMILIES, build_model, count_flops, count_params, validate_size
from tests.helpers.flops import measured_flops

OFF_LADDER = [{"width": 24, "depth": 2, "heads": 3, "multi_query": False, "fourier": 3},
              {"width": 10, "depth": 1, "mlp_ratio": 4}, {"width": 32, "depth": 1, "fourier": 4},
              {"width": 30, "depth": 2, "heads": 5, "mlp_ratio": 3}]


def test_keys_and_defaults():
    fam = FAMILIES["transformer"]
    assert {"width", "depth", "heads", "fourier", "multi_query"} <= set(fam.size_keys)
    assert not fam.equivariant and fam.group is None
    assert validate_size("transformer", {"width": 30, "depth": 2}) == {
        "width": 30, "depth": 2, "heads": 6, "fourier": 0, "multi_query": True,
        "mlp_ratio": 2}
    with pytest.raises(UserError, match="divisible"):
        validate_size("transformer", {"width": 30, "depth": 2, "heads": 8})


def test_study_ladder_spans_four_decades():
    counts = [count_params("transformer", s) for s in FAMILIES["transformer"].ladder]
    assert counts[0] <= 2e3 and counts[-1] >= 1e7 and math.log10(counts[-1] / counts[0]) >= 4


@pytest.mark.parametrize("size", OFF_LADDER)
def test_counts_off_ladder(size):
    model = build_model("transformer", size)
    assert sum(p.numel() for p in model.parameters()) == count_params("transformer", size)
    expected = count_flops("transformer", size, tokens=12, batch_size=3)
    got = measured_flops("transformer", size, 12, 3)
    assert expected == got, (expected, got)  # exact: the count is of what runs
