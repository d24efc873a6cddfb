"""The model families of the study, as plug-ins (DESIGN sections 4, 5 and 10).

Every model maps the batch dict of the task (B scenes of V padded vertex tokens: x0, x1, c0,
c1, body, mask, floor_point, up) to predicted positions (B, V, 3), zero on padding; padding
never changes the prediction on real tokens. A family module declares a `Family` (size keys
and defaults, ladder, exact parameter count, training FLOPs per step, size check, symmetry)
and the registry lists it in one line; the rest of equisweep reads only the declaration.

    from equisweep.models import FAMILIES, build_model, count_flops, count_params
    model = build_model("gatr", {"width": 16, "depth": 3})
    pred = model(batch)                      # (B, V, 3) predicted positions
    count_flops("gatr", {"width": 16, "depth": 3}, tokens=V, batch_size=B)
    [name for name, fam in FAMILIES.items() if fam.equivariant]

Families: gatr (models/gatr/, E(3)-equivariant), transformer (models/transformer.py, not
equivariant) and egnn (models/egnn.py, an E(n)-equivariant graph network, E(3)-equivariant
here); their size keys are documented in their modules.
"""

from equisweep.models.family import Family, registry_of
from equisweep.models.registry import (
    FAMILIES,
    build_model,
    count_flops,
    count_params,
    get_family,
    validate_size,
)

__all__ = ["FAMILIES", "Family", "build_model", "count_flops", "count_params", "get_family",
           "registry_of", "validate_size"]
