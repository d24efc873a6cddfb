"""The two model families of the study: GATr (equivariant) and a baseline transformer.

    from equisweep.models import build_model, count_flops, count_params, validate_size
    model = build_model("gatr", {"width": 16, "depth": 3})
    pred = model(batch)                      # (B, V, 3) predicted positions
    count_flops("gatr", {"width": 16, "depth": 3}, tokens=V, batch_size=B)

Size keys and defaults are documented in equisweep.models.gatr and .transformer.
"""

from equisweep.models.registry import (
    FAMILIES,
    Family,
    build_model,
    count_flops,
    count_params,
    get_family,
    validate_size,
)

__all__ = ["FAMILIES", "Family", "build_model", "count_flops", "count_params", "get_family",
           "validate_size"]
