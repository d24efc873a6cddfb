"""FLOPs of one real training step as torch's FlopCounterMode sees them."""

from __future__ import annotations

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from equisweep.models import build_model
from tests.helpers.batches import make_batch


def measured_flops(family: str, size: dict, tokens: int, batch_size: int) -> int:
    """Forward + backward of the MSE loss. SDPA runs on its math backend: FlopCounterMode
    counts the fused CPU kernels as zero."""
    torch.manual_seed(0)
    model = build_model(family, size)
    batch = make_batch(B=batch_size, V=tokens, dtype=torch.float32)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        loss = ((model(batch) - batch["y"]) ** 2).mean()
        loss.backward()
    return counter.get_total_flops()
