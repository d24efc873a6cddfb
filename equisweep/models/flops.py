"""Exact parameter counts and training FLOPs per optimizer step, from formulas only.

Counting rule (DESIGN section 5): every matrix product counts 2 m n k FLOPs (multiply +
add) in the forward pass; the backward pass repeats it once per operand that needs a
gradient. So a layer on hidden activations counts 3x its forward, one whose input is the
batch itself (no gradient) or whose other factor is a constant table counts 2x, and a
product of two constants counts 1x. Attention QK^T and AV are included. Element-wise work
(norms, GELU, softmax, outer products, AdamW) is not counted.

GATr's equivariant linear counts the dense (16 in) x (16 out) matmul it performs for each
multivector kind, the small ones of the scalar paths ((in_mv + in_s) x out_s into the
scalars, in_s x out_mv into the multivectors' scalar components), and the token-independent
weight expansion (out*in, 9) @ (9, 256). The attention's q/k/v projection keeps only the
components attention reads and uses the fused (16 in + s_in) x (kept columns) matrix.
GATr's bilinear counts the dense 16x16x16 product kernels (geometric product and join,
stacked as one (256, 32) matrix) applied to the outer product of each operand pair,
2 * 256 * 32 per pair forward and again backward, plus the two 16x16 matrix-vector products
of its backward.
"""

from __future__ import annotations

from equisweep.models.gatr import INPUT, OUTPUT, GATrDims
from equisweep.models.gatr_layers import _QK_COMPONENTS, Layout
from equisweep.models.transformer import TransformerDims


def _equi_params(lin: Layout, lout: Layout, bias: bool = True) -> int:
    n = 9 * (lin.ce * lout.ce + lin.co * lout.co)
    n += lin.ns * lout.ce + lin.ce * lout.ns + lin.ns * lout.ns
    return n + ((lout.ce + lout.ns) if bias else 0)


def _equi_flops(lin: Layout, lout: Layout, tokens: int, input_grad: bool = True,
                cols: tuple[int, int] | None = None) -> int:
    """Training FLOPs of one EquiLinear on `tokens` tokens. cols: the (rho, det) output
    columns computed by a layer that keeps only some (then the fused [mv | s] matrix is
    used); otherwise one matmul per multivector kind and one for the scalar paths."""
    factor = 3 if input_grad else 2

    def mm(k: int, n: int) -> int:
        return factor * 2 * tokens * k * n if k and n else 0

    if cols is not None:
        n = mm(lin.es, cols[0]) + mm(16 * lin.co, cols[1] if lout.co else 0)
    else:
        n = mm(16 * lin.ce, 16 * lout.ce) + mm(lin.ns, lout.ce)
        n += mm(lin.ce + lin.ns, lout.ns) + mm(16 * lin.co, 16 * lout.co)
    # weight expansion: forward + gradient w.r.t. the weights (the basis is constant)
    n += 2 * 2 * 9 * 256 * (lin.ce * lout.ce + lin.co * lout.co)
    return n


def _gatr_parts(d: GATrDims):
    L = d.layout
    H, a, b, hs, m = d.heads, d.hidden_mv - d.hidden_mv // 2, d.hidden_mv // 2, d.hidden_s, \
        d.mlp_groups
    return L, H, a, b, hs, m


def gatr_params(size: dict) -> int:
    d = GATrDims.of(size)
    L, H, a, b, hs, m = _gatr_parts(d)
    attn = (_equi_params(L, Layout((H + 2) * a, (H + 2) * b, (H + 2) * hs))
            + H * (a + b) + H + _equi_params(Layout(H * a, H * b, H * hs), L))
    mlp = (_equi_params(L, Layout(4 * m, 4 * m, 2 * L.ns))
           + _equi_params(Layout(4 * m, 4 * m, 2 * L.ns), L))
    return _equi_params(INPUT, L) + d.depth * (attn + mlp) + _equi_params(L, OUTPUT)


def gatr_flops(size: dict, tokens: int, batch_size: int) -> int:
    d = GATrDims.of(size)
    L, H, a, b, hs, m = _gatr_parts(d)
    T, N = tokens, tokens * batch_size
    dq = 13 * (a + b) + hs
    dv = 16 * (a + b) + hs
    n = len(_QK_COMPONENTS)
    qkv_cols = ((H + 1) * a * n + 16 * a + (H + 2) * hs, (H + 1) * b * n + 16 * b)
    attn = (_equi_flops(L, Layout((H + 2) * a, (H + 2) * b, (H + 2) * hs), N, cols=qkv_cols)
            + 3 * 2 * batch_size * (T * H) * T * (dq + dv)
            + _equi_flops(Layout(H * a, H * b, H * hs), L, N))
    mlp = (_equi_flops(L, Layout(4 * m, 4 * m, 2 * L.ns), N)
           + (4 * m * N) * (2 * 2 * 256 * 32 + 2 * 2 * 256)
           + _equi_flops(Layout(4 * m, 4 * m, 2 * L.ns), L, N))
    return (_equi_flops(INPUT, L, N, input_grad=False) + d.depth * (attn + mlp)
            + _equi_flops(L, OUTPUT, N))


def transformer_params(size: dict) -> int:
    d = TransformerDims.of(size)
    w, r = d.width, d.mlp_ratio
    kv = 2 * d.kv_heads * d.head_dim
    block = (w * w + w) + (w * kv + kv) + (w * w + w) + d.heads + (w * r * w + r * w) \
        + (r * w * w + w)
    return d.in_features * w + w + d.depth * block + 3 * w + 3


def transformer_flops(size: dict, tokens: int, batch_size: int) -> int:
    d = TransformerDims.of(size)
    w, r, T, N = d.width, d.mlp_ratio, tokens, tokens * batch_size
    kv = 2 * d.kv_heads * d.head_dim
    block = 3 * 2 * N * (w * w + w * kv + w * w + 2 * r * w * w)
    block += 3 * 2 * 2 * batch_size * d.heads * T * T * d.head_dim
    fourier = 2 * N * 4 * 3 * d.fourier
    return 2 * 2 * N * d.in_features * w + fourier + d.depth * block + 3 * 2 * N * w * 3
