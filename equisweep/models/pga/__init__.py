"""Projective geometric algebra G(3,0,1): tables, embeddings and the Pin(3,0,1) action."""

from equisweep.models.pga.algebra import (
    BLADES,
    GRADE,
    INDEX,
    INNER_INDEX,
    NAMES,
    dual,
    geometric_product,
    grade_involution,
    grade_projection,
    inner_product,
    join,
    outer_product,
    reverse,
    tables,
    undual,
)
from equisweep.models.pga.embed import (
    embed_plane,
    embed_point,
    embed_pseudoscalar,
    embed_scalar,
    embed_translation,
    extract_plane_normal,
    extract_point,
    extract_pseudoscalar,
    extract_scalar,
    extract_translation,
)
from equisweep.models.pga.group import (
    act,
    det_sign,
    random_pin,
    rt_from_versor,
    versor_from_rt,
    versor_inverse,
)

__all__ = [
    "BLADES", "GRADE", "INDEX", "INNER_INDEX", "NAMES", "act", "det_sign", "dual",
    "embed_plane", "embed_point", "embed_pseudoscalar", "embed_scalar", "embed_translation",
    "extract_plane_normal", "extract_point", "extract_pseudoscalar", "extract_scalar",
    "extract_translation", "geometric_product", "grade_involution", "grade_projection",
    "inner_product", "join", "outer_product", "random_pin", "reverse", "rt_from_versor",
    "tables", "undual",
    "versor_from_rt", "versor_inverse",
]
