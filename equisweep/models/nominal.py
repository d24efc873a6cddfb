"""GATr v1.4's nominal FLOP count, the cost convention of the GATr scaling paper's era
(DESIGN section 5), declared per family.

The rule (GATr v1.4.0, `gatr/layers/linear.py::count_nominal_flops_in_equi_linear`): only
linear layers count, and each weight-matrix element costs 6 FLOPs per token it is applied to
(forward + backward, Kaplan et al. 2020); biases, norms, activations, attention scores and
the bilinear product kernels are left out. An equivariant linear map counts each
multivector channel pair it connects as the dense 16x16 matrix it expands to, so per token

    6 (in_s out_s + in_s out_mv + in_mv out_s + 16^2 (multivector channel pairs)).

A plain linear layer is thus 6 N per token: the transformer's count is 6 x its weight-matrix
elements per token (its biases and per-head attention biases are not linear-layer
weights). EGNN, which the rule predates, counts by the same rule: a per-node layer is
applied once per token, a per-edge layer once per ordered token pair.

Every family's formula is here, beside the others, and not in the family's model module,
because analysis computes the count for stores written before it was a trial column, and
analysis never imports torch: this module imports nothing heavy. Each family's `Family`
declaration points at its formula (`nominal=`), and a test checks every formula against the
linear layers of the built model. A new family adds its formula here and one line to
NOMINAL.

A formula takes the normalised size (`validate_size`), the tokens per scene and the batch
size, like `Family.flops`, and returns the nominal training FLOPs of one step.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from types import MappingProxyType

FLOPS_PER_WEIGHT = 6  # forward + backward per weight element per token (Kaplan et al. 2020)
MV = 16  # components of a PGA multivector


def dense(k: int, n: int, rows: int) -> int:
    """A (k, n) weight matrix applied to `rows` tokens (or edges)."""
    return FLOPS_PER_WEIGHT * k * n * rows


def equi_linear(lin: tuple[int, int, int], lout: tuple[int, int, int], rows: int) -> int:
    """GATr's equivariant linear map between token states of (rho-kind multivector, det-kind
    multivector, scalar) channel counts, as models/gatr/linear.py lays them out: multivector
    weights connect channels of one kind (16x16 dense each), scalars reach the rho-kind
    multivectors' scalar component and are read from it."""
    (ce, co, ns), (oe, oo, os_) = lin, lout
    weights = MV * MV * (ce * oe + co * oo) + ns * oe + ce * os_ + ns * os_
    return FLOPS_PER_WEIGHT * weights * rows


def gatr(size: Mapping, tokens: int, batch_size: int) -> int:
    """The layers of models/gatr/net.py: input map, per block the attention's q/k/v and
    output maps and the geometric MLP's operand and output maps, the readout."""
    w, depth, scalars, heads = (int(size[k]) for k in ("width", "depth", "scalars", "heads"))
    rows = tokens * batch_size
    layout = (w - w // 2, w // 2, scalars)
    hidden_mv, hidden_s = max(2, 2 * w // heads), max(4, 2 * scalars // heads)
    a, b = hidden_mv - hidden_mv // 2, hidden_mv // 2
    qkv = ((heads + 2) * a, (heads + 2) * b, (heads + 2) * hidden_s)
    att_out = (heads * a, heads * b, heads * hidden_s)
    m = max(1, w // 4)
    mlp_hidden = (4 * m, 4 * m, 2 * scalars)
    block = (
        equi_linear(layout, qkv, rows)
        + equi_linear(att_out, layout, rows)
        + equi_linear(layout, mlp_hidden, rows)
        + equi_linear(mlp_hidden, layout, rows)
    )
    return (
        equi_linear((5, 4, 8), layout, rows) + depth * block + equi_linear(layout, (0, 1, 0), rows)
    )


def transformer(size: Mapping, tokens: int, batch_size: int) -> int:
    """The nn.Linear layers of models/transformer.py: input, per block q, shared k/v, output
    projection and the two MLP layers, the readout."""
    w, depth, heads, fourier, ratio = (
        int(size[k]) for k in ("width", "depth", "heads", "fourier", "mlp_ratio")
    )
    kv = (1 if size["multi_query"] else heads) * (w // heads)
    rows = tokens * batch_size
    features = 32 + 8 * fourier  # transformer.N_FEATURES plus the Fourier features
    block = (
        dense(w, w, rows)
        + dense(w, 2 * kv, rows)
        + dense(w, w, rows)
        + dense(w, ratio * w, rows)
        + dense(ratio * w, w, rows)
    )
    return dense(features, w, rows) + depth * block + dense(w, 3, rows)


def egnn(size: Mapping, tokens: int, batch_size: int) -> int:
    """The nn.Linear layers of models/egnn.py: node layers once per token, edge layers once
    per ordered token pair of a scene (the dense edge tensor the model computes)."""
    w, depth = int(size["width"]), int(size["depth"])
    nodes, edges = tokens * batch_size, tokens * tokens * batch_size
    layer = (
        dense(w, 2 * w, nodes)
        + dense(2 * w, w, nodes)
        + dense(w, w, nodes)
        + dense(w, 2, nodes)
        + dense(5, w, edges)
        + dense(w, w, edges)
        + dense(w, 1, edges)
    )
    return dense(10, w, nodes) + depth * layer


NOMINAL: Mapping[str, Callable[[Mapping, int, int], int]] = MappingProxyType(
    {"gatr": gatr, "transformer": transformer, "egnn": egnn}
)


def per_step(family: str, size, task, batch_size: int) -> float | None:
    """Nominal training FLOPs of one step of a stored trial: every scene counted at the
    dataset's largest (`TaskConfig.max_tokens`, the bound the spec's flops_per_step uses
    too). size and task may be JSON text or dicts; None when the family declares no nominal
    count or the inputs do not say enough (an older or foreign row)."""
    fn = NOMINAL.get(family)
    if fn is None:
        return None
    from equisweep.errors import UserError
    from equisweep.task.config import TaskConfig

    try:
        size = json.loads(size) if isinstance(size, str) else dict(size)
        task = json.loads(task) if isinstance(task, str) else dict(task)
        if isinstance(batch_size, bool) or int(batch_size) < 1:
            return None
        tokens = TaskConfig.from_dict(task).max_tokens()
        return float(fn(size, tokens, int(batch_size)))
    except (KeyError, TypeError, ValueError, UserError):
        return None
