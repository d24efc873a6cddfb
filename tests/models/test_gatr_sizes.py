"""GATr's own sizes: its keys and defaults, the study ladder, counts off the ladder."""

from __future__ import annotations

import math

import pytest

from equisweep.errors import UserError
from equisweep.models import FAMILIES, build_model, count_flops, count_params, validate_size
from tests.helpers.flops import measured_flops

OFF_LADDER = [{"width": 5, "depth": 1, "scalars": 3, "heads": 3},
              {"width": 16, "scalars": 64, "depth": 4}, {"width": 7, "depth": 2, "heads": 1},
              {"width": 6, "depth": 2, "heads": 3, "scalars": 5},
              {"width": 9, "depth": 1, "scalars": 1}, {"width": 16, "depth": 1, "scalars": 64}]


def test_keys_and_defaults():
    assert set(FAMILIES["gatr"].size_keys) == {"width", "depth", "scalars", "heads"}
    assert FAMILIES["gatr"].equivariant and FAMILIES["gatr"].group == "E(3)"
    assert validate_size("gatr", {"width": 16, "depth": 3}) == {
        "width": 16, "depth": 3, "scalars": 64, "heads": 8}
    assert validate_size("gatr", {"width": 16, "scalars": 64, "depth": 4})["scalars"] == 64
    with pytest.raises(UserError, match="'width' must be at least 2"):
        validate_size("gatr", {"width": 1, "depth": 2})


def test_study_ladder_spans_four_decades():
    counts = [count_params("gatr", s) for s in FAMILIES["gatr"].ladder]
    assert counts[0] <= 2e3 and counts[-1] >= 1e7 and math.log10(counts[-1] / counts[0]) >= 4


@pytest.mark.parametrize("size", OFF_LADDER[:3])
def test_param_count_exact_off_ladder(size):
    model = build_model("gatr", size)
    assert sum(p.numel() for p in model.parameters()) == count_params("gatr", size)


@pytest.mark.parametrize("size", OFF_LADDER[3:])
def test_flops_off_ladder(size):
    expected = count_flops("gatr", size, tokens=12, batch_size=3)
    got = measured_flops("gatr", size, 12, 3)
    assert expected == got, (expected, got)  # exact: the count is of what runs
