"""The counting rule every family's FLOP formula is built from (DESIGN section 5).

A matrix product of an (m, k) by a (k, n) matrix counts 2 m k n FLOPs (multiply + add) in
the forward pass; the backward pass repeats it once per operand that needs a gradient. So a
product of two trainable or hidden factors counts 3x its forward (`passes=3`), one whose
other factor is the batch itself or a constant table counts 2x, and a product of two
constants 1x. Attention QK^T and AV are matmuls like any other. Element-wise work (norms,
activations, softmax, distances, outer products, the optimizer) is not counted.

Families keep their own formulas beside their models (models/<family>); this module holds
only the primitives they share.
"""

from __future__ import annotations


def matmul(rows: int, k: int, n: int, passes: int = 3) -> int:
    """FLOPs of `rows` x k times k x n, forward and backward (`passes` matmuls of it)."""
    return passes * 2 * rows * k * n if k and n else 0


def attention(batch: int, queries: int, keys: int, dq: int, dv: int, passes: int = 3) -> int:
    """QK^T (query/key width dq) and AV (value width dv) for `queries` x `keys` per scene."""
    return matmul(batch * queries, keys, dq + dv, passes)


def linear_params(k: int, n: int, bias: bool = True) -> int:
    """Parameters of nn.Linear(k, n)."""
    return k * n + (n if bias else 0)
