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
here); their size keys are documented in their modules. Their nominal counts (GATr v1.4's
convention, DESIGN section 5) are in models/nominal.py, which imports no torch.
"""

from __future__ import annotations

from importlib import import_module

# Loaded on first use: the registry imports torch (the models), while the counting modules
# (models/nominal.py, models/flops.py) must stay importable by analysis, which never does.
_LAZY = {
    "Family": "equisweep.models.family",
    "registry_of": "equisweep.models.family",
    **{name: "equisweep.models.registry" for name in (
        "FAMILIES", "build_model", "count_flops", "count_params", "get_family",
        "validate_size")},
}

__all__ = ["FAMILIES", "Family", "build_model", "count_flops", "count_params", "get_family",
           "registry_of", "validate_size"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'equisweep.models' has no attribute {name!r}")
