"""Size dicts, for every family in the registry: declarations, validation, defaults,
ladders, exact parameter counts, the public API."""

from __future__ import annotations

import math

import pytest
import torch

from equisweep.errors import UserError
from equisweep.models import (
    FAMILIES,
    Family,
    build_model,
    count_flops,
    count_params,
    registry_of,
    validate_size,
)
from tests.helpers.batches import make_batch
from tests.helpers.families import ALL


@pytest.mark.parametrize("family", ALL)
def test_declaration_is_consistent(family):
    fam = FAMILIES[family]
    assert fam.name == family
    assert set(fam.required) <= set(fam.size_keys) and set(fam.positive) <= set(fam.size_keys)
    assert fam.equivariant == (fam.group is not None)
    with pytest.raises(TypeError):
        FAMILIES[family] = fam  # the registry is read-only


@pytest.mark.parametrize("family", ALL)
def test_normalised_sizes_are_fixed_points(family):
    for size in FAMILIES[family].ladder:
        norm = validate_size(family, size)
        assert list(norm) == list(FAMILIES[family].size_keys)
        assert validate_size(family, norm) == norm


@pytest.mark.parametrize("family", ALL)
def test_bad_sizes_name_the_key(family):
    fam = FAMILIES[family]
    base = dict(fam.ladder[1])
    cases = [({**base, "colour": 1}, "'colour'"), ([8, 2], "mapping")]
    for key in fam.required:
        cases.append(({k: v for k, v in base.items() if k != key}, repr(key)))
    for key in fam.positive:
        cases.append(({**base, key: 0}, repr(key)))
    for key, default in fam.size_keys.items():
        if isinstance(default, bool):
            cases.append(({**base, key: 1}, repr(key)))
        else:
            cases += [({**base, key: -1}, repr(key)), ({**base, key: 2.5}, repr(key)),
                      ({**base, key: True}, repr(key)), ({**base, key: "wide"}, repr(key))]
    for size, needle in cases:
        with pytest.raises(UserError, match=needle):
            validate_size(family, size)
        with pytest.raises(UserError):
            build_model(family, size)


def test_numpy_numbers_are_accepted_and_normalised():
    import numpy as np

    for family in ALL:
        fam = FAMILIES[family]
        raw = {k: (np.bool_(v) if isinstance(v, bool) else np.int64(v) if k != "depth"
                   else np.float64(v)) for k, v in validate_size(family, fam.ladder[1]).items()}
        size = validate_size(family, raw)
        assert size == validate_size(family, fam.ladder[1])
        assert all(type(v) in (int, bool) for v in size.values())


def test_unknown_family_names_the_known_ones():
    with pytest.raises(UserError, match="'mlp'.*" + ", ".join(sorted(FAMILIES))):
        build_model("mlp", {"width": 8, "depth": 1})
    with pytest.raises(UserError, match="'mlp'"):
        count_flops("mlp", {"width": 8, "depth": 1}, tokens=4, batch_size=1)


@pytest.mark.parametrize("family", ALL)
def test_count_flops_rejects_bad_token_counts(family):
    size = FAMILIES[family].ladder[0]
    for bad in (0, -1, 2.0, True):
        with pytest.raises(UserError, match="tokens"):
            count_flops(family, size, tokens=bad, batch_size=1)
        with pytest.raises(UserError, match="batch_size"):
            count_flops(family, size, tokens=4, batch_size=bad)


@pytest.mark.parametrize("family", ALL)
def test_ladder_spans_decades_and_counts_are_exact(family):
    ladder = FAMILIES[family].ladder
    counts = [count_params(family, s) for s in ladder]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    assert math.log10(counts[-1] / counts[0]) >= 2
    for size, n in zip(ladder, counts):
        if n > 1e6:
            continue  # building the large ones costs memory, not information
        model = build_model(family, size)
        assert sum(p.numel() for p in model.parameters()) == n, size
        assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("family", ALL)
def test_build_model_dtype_and_output_shape(family):
    batch = make_batch(B=2, V=9, dtype=torch.float64)
    model = build_model(family, FAMILIES[family].ladder[1], dtype=torch.float64)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    out = model(batch)
    assert out.shape == (2, 9, 3) and out.dtype == torch.float64
    assert torch.equal(out[~batch["mask"]], torch.zeros_like(out[~batch["mask"]]))


def test_registry_rejects_inconsistent_declarations():
    fam = FAMILIES[ALL[0]]
    with pytest.raises(ValueError, match="twice"):
        registry_of(fam, fam)
    with pytest.raises(ValueError, match="group"):
        Family("x", {"width": None, "depth": None}, (), fam.model, fam.params, fam.flops,
               equivariant=True)
    with pytest.raises(ValueError, match="size keys"):
        Family("x", {"width": None}, (), fam.model, fam.params, fam.flops)
