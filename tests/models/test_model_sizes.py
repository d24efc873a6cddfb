"""Size dicts: validation, defaults, ladders, exact parameter counts, the public API."""

from __future__ import annotations

import math

import pytest
import torch

from equisweep.errors import UserError
from equisweep.models import FAMILIES, build_model, count_flops, count_params, validate_size


def test_families_and_keys():
    assert set(FAMILIES) == {"gatr", "transformer"}
    assert set(FAMILIES["gatr"].size_keys) == {"width", "depth", "scalars", "heads"}
    assert {"width", "depth", "heads", "fourier", "multi_query"} <= set(
        FAMILIES["transformer"].size_keys)


def test_defaults_are_filled():
    assert validate_size("gatr", {"width": 16, "depth": 3}) == {
        "width": 16, "depth": 3, "scalars": 64, "heads": 8}
    assert validate_size("gatr", {"width": 16, "scalars": 64, "depth": 4})["scalars"] == 64
    t = validate_size("transformer", {"width": 30, "depth": 2})
    assert t == {"width": 30, "depth": 2, "heads": 6, "fourier": 0, "multi_query": True,
                 "mlp_ratio": 2}
    # idempotent: a normalised size normalises to itself
    assert validate_size("transformer", t) == t


@pytest.mark.parametrize("family,size,needle", [
    ("gatr", {"width": 8, "depth": 2, "colour": 1}, "'colour'"),
    ("gatr", {"width": 0, "depth": 2}, "'width'"),
    ("gatr", {"width": 1, "depth": 2}, "'width'"),
    ("gatr", {"width": 8, "depth": -1}, "'depth'"),
    ("gatr", {"width": 8}, "'depth'"),
    ("gatr", {"width": 8, "depth": 2, "heads": 0}, "'heads'"),
    ("gatr", {"width": 8.5, "depth": 2}, "'width'"),
    ("gatr", {"width": True, "depth": 2}, "'width'"),
    ("gatr", [8, 2], "mapping"),
    ("transformer", {"width": 30, "depth": 2, "heads": 8}, "divisible"),
    ("transformer", {"width": 32, "depth": 2, "fourier": -1}, "'fourier'"),
    ("transformer", {"width": 32, "depth": 2, "multi_query": 1}, "'multi_query'"),
    ("transformer", {"width": "wide", "depth": 2}, "'width'"),
])
def test_bad_sizes_name_the_key(family, size, needle):
    with pytest.raises(UserError, match=needle):
        validate_size(family, size)
    with pytest.raises(UserError):
        build_model(family, size)


def test_numpy_numbers_are_accepted_and_normalised():
    import numpy as np

    size = validate_size("transformer", {"width": np.int64(32), "depth": np.float64(2.0),
                                         "multi_query": np.bool_(False)})
    assert size["width"] == 32 and type(size["width"]) is int
    assert size["multi_query"] is False


def test_unknown_family_names_the_known_ones():
    with pytest.raises(UserError, match="'mlp'.*gatr, transformer"):
        build_model("mlp", {"width": 8, "depth": 1})
    with pytest.raises(UserError, match="'mlp'"):
        count_flops("mlp", {"width": 8, "depth": 1}, tokens=4, batch_size=1)


def test_count_flops_rejects_bad_token_counts():
    with pytest.raises(UserError, match="tokens"):
        count_flops("gatr", {"width": 8, "depth": 1}, tokens=0, batch_size=1)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_ladder_spans_four_decades_and_counts_are_exact(family):
    ladder = FAMILIES[family].ladder
    counts = [count_params(family, s) for s in ladder]
    assert counts == sorted(counts)
    assert counts[0] <= 2e3 and counts[-1] >= 1e7
    assert math.log10(counts[-1] / counts[0]) >= 4
    for size, n in zip(ladder, counts):
        if n > 1e6:
            continue  # building the large ones costs memory, not information
        model = build_model(family, size)
        assert sum(p.numel() for p in model.parameters()) == n, size


@pytest.mark.parametrize("size", [{"width": 5, "depth": 1, "scalars": 3, "heads": 3},
                                  {"width": 16, "scalars": 64, "depth": 4},
                                  {"width": 7, "depth": 2, "heads": 1}])
def test_gatr_param_count_exact_off_ladder(size):
    model = build_model("gatr", size)
    assert sum(p.numel() for p in model.parameters()) == count_params("gatr", size)


def test_transformer_param_count_exact_off_ladder():
    for size in ({"width": 24, "depth": 2, "heads": 3, "multi_query": False, "fourier": 3},
                 {"width": 10, "depth": 1, "mlp_ratio": 4}):
        model = build_model("transformer", size)
        assert sum(p.numel() for p in model.parameters()) == count_params("transformer", size)


def test_build_model_dtype_and_output_shape():
    from tests.helpers.equivariance import make_batch

    batch = make_batch(B=2, V=9, dtype=torch.float64)
    for family in FAMILIES:
        model = build_model(family, FAMILIES[family].ladder[1], dtype=torch.float64)
        assert all(p.dtype == torch.float64 for p in model.parameters())
        out = model(batch)
        assert out.shape == (2, 9, 3) and out.dtype == torch.float64
        assert torch.equal(out[~batch["mask"]], torch.zeros_like(out[~batch["mask"]]))
