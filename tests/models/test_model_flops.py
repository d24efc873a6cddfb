"""count_flops agrees with torch's FlopCounterMode on a real training step (attention under
the math SDPA backend, which FlopCounterMode can see on CPU)."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from equisweep.models import build_model, count_flops
from tests.helpers.equivariance import make_batch

SIZES = {
    "gatr": [{"width": 2, "depth": 1}, {"width": 4, "depth": 1},
             {"width": 6, "depth": 2, "heads": 3, "scalars": 5},
             {"width": 8, "depth": 2}, {"width": 9, "depth": 1, "scalars": 1},
             {"width": 16, "depth": 1, "scalars": 64}],
    "transformer": [{"width": 8, "depth": 1}, {"width": 16, "depth": 2},
                    {"width": 24, "depth": 2, "heads": 3, "multi_query": False},
                    {"width": 32, "depth": 1, "fourier": 4},
                    {"width": 30, "depth": 2, "heads": 5, "mlp_ratio": 3},
                    {"width": 64, "depth": 3}],
}
CASES = [(f, s) for f, sizes in SIZES.items() for s in sizes]


def measured(family, size, tokens, batch_size):
    torch.manual_seed(0)
    model = build_model(family, size)
    batch = make_batch(B=batch_size, V=tokens, dtype=torch.float32)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        loss = ((model(batch) - batch["y"]) ** 2).mean()
        loss.backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("family,size", CASES, ids=[f"{f}-{i}" for i, (f, _) in
                                                    enumerate(CASES)])
@pytest.mark.parametrize("tokens", [12, 31])
def test_count_flops_matches_flop_counter(family, size, tokens):
    expected = count_flops(family, size, tokens=tokens, batch_size=3)
    got = measured(family, size, tokens, 3)
    assert abs(expected - got) <= 0.10 * got, (expected, got)


def test_flops_grow_with_tokens_batch_and_size():
    for family, sizes in SIZES.items():
        small, big = sizes[0], sizes[-1]
        f = count_flops(family, small, tokens=16, batch_size=2)
        doubled = count_flops(family, small, tokens=16, batch_size=4)
        assert 1.8 * f < doubled <= 2 * f  # weight expansion does not grow with the batch
        assert count_flops(family, small, tokens=32, batch_size=2) > 2 * f  # attention: T^2
        assert count_flops(family, big, tokens=16, batch_size=2) > f
