"""GATr's geometric bilinears: the geometric product and the join of operand pairs, and the
GeometricMLP built on them (with its counts).

The bilinear counts the dense 16x16x16 product kernels (geometric product and join, stacked
as one (256, 32) matrix) applied to the outer product of each operand pair: 2 * 256 * 32 per
pair forward and again backward, plus the two 16x16 matrix-vector products of its backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from equisweep.models import flops
from equisweep.models.gatr.linear import EquiLinear, Layout, equi_flops, equi_params
from equisweep.models.gatr.nonlinearity import gated_gelu
from equisweep.models.pga.algebra import tables

_CHUNK_ROWS = 8192  # keeps each (rows, 256) outer product at 8 MiB: reused, not faulted in


class _ProductKernels(torch.autograd.Function):
    """out[r] = outer(left[r], right[r]) @ kern: the geometric product and the join of each
    pair of rows, as the dense (256, 32) stack of both 16x16x16 tables.

    Autograd through the plain expression would keep and re-materialise several (rows, 256)
    temporaries; here the forward and the backward walk the rows in chunks and only the
    16-wide operands are saved.
    """

    @staticmethod
    def forward(left, right, kern):
        rows = left.shape[0]
        out = left.new_empty(rows, kern.shape[1])
        for lo in range(0, rows, _CHUNK_ROWS):
            hi = min(lo + _CHUNK_ROWS, rows)
            outer = left[lo:hi, :, None] * right[lo:hi, None, :]
            torch.mm(outer.reshape(hi - lo, 256), kern, out=out[lo:hi])
        return out

    # setup_context apart from forward, and a vmap rule: stacked trials (trainer/vmapped.py)
    # run the model under torch.func.vmap, which needs both.
    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)

    @staticmethod
    def vmap(info, in_dims, left, right, kern):
        """The stacked members' rows are just more rows: fold the stack into them."""
        if in_dims[2] is not None:
            raise NotImplementedError("the product kernels are constants, never stacked")
        k = info.batch_size

        def rows_of(x, dim):
            x = x.expand(k, *x.shape) if dim is None else x.movedim(dim, 0)
            return x.reshape(-1, 16)

        out = _ProductKernels.apply(rows_of(left, in_dims[0]), rows_of(right, in_dims[1]), kern)
        return out.reshape(k, -1, kern.shape[1]), 0

    @staticmethod
    def backward(ctx, grad):
        left, right, kern = ctx.saved_tensors
        kern_t = kern.t()
        g_left, g_right = torch.empty_like(left), torch.empty_like(right)
        for lo in range(0, left.shape[0], _CHUNK_ROWS):
            hi = min(lo + _CHUNK_ROWS, left.shape[0])
            g_outer = torch.mm(grad[lo:hi], kern_t).view(hi - lo, 16, 16)
            torch.matmul(g_outer, right[lo:hi, :, None], out=g_left[lo:hi, :, None])
            torch.matmul(left[lo:hi, None, :], g_outer, out=g_right[lo:hi, None, :])
        return g_left, g_right, None


def geometric_and_join(left: torch.Tensor, right: torch.Tensor) -> tuple[torch.Tensor,
                                                                         torch.Tensor]:
    """Geometric product and join (no reference multivector: see the module docstring) of
    paired multivectors (..., 16); each is the dense 16x16x16 table contracted with the
    outer product of the pair."""
    tab = tables(left.device, left.dtype)
    kern = torch.cat([tab.geometric, tab.join], -1).reshape(256, 32)
    lead = left.shape[:-1]
    out = _ProductKernels.apply(left.reshape(-1, 16).contiguous(),
                                right.reshape(-1, 16).contiguous(), kern)
    return torch.split(out.reshape(*lead, 32), 16, -1)


class GeometricMLP(nn.Module):
    """Bilinear -> gated GELU -> equivariant linear, as in GATr's GeoMLP.

    The bilinear takes 4m pairs of operands, m of each kind pairing (rho, rho), (det, det),
    (rho, det), (det, rho), and returns the geometric product and the join of every pair:
    4m hidden channels of each kind (the join of a pair has the other kind than its
    product). Scalars go ns -> 2 ns -> ns through the same two linear maps.
    """

    def __init__(self, layout: Layout, m: int, out_gain: float):
        super().__init__()
        self.layout, self.m = layout, m
        self.hidden = Layout(4 * m, 4 * m, 2 * layout.ns)
        # operands per kind: 4 groups of m: rho [L_ee, L_eo, R_ee, R_oe], det [L_oo, L_oe,
        # R_oo, R_eo]
        self.operands = EquiLinear(layout, Layout(4 * m, 4 * m, 2 * layout.ns))
        self.out = EquiLinear(self.hidden, layout, gain=out_gain)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        m = self.m
        e, s, o = Layout(4 * m, 4 * m, self.hidden.ns).split(self.operands(h))
        e = e.unflatten(-2, (4, m)).movedim(-3, 0)  # (4, ..., m, 16)
        o = o.unflatten(-2, (4, m)).movedim(-3, 0)
        # pairs ee, oo, eo, oe: products of kinds e, e, o, o; joins of kinds o, o, e, e
        gp, jn = geometric_and_join(torch.stack([e[0], o[0], e[1], o[1]]),
                                    torch.stack([e[2], o[2], o[3], e[3]]))
        he = torch.cat([gp[0], gp[1], jn[2], jn[3]], -2)
        ho = torch.cat([jn[0], jn[1], gp[2], gp[3]], -2)
        he, ho = gated_gelu(he, ho)
        s = F.gelu(s, approximate="tanh")
        return self.out(self.hidden.join(he, s, ho))


def mlp_params(layout: Layout, m: int) -> int:
    hidden = Layout(4 * m, 4 * m, 2 * layout.ns)
    return equi_params(layout, hidden) + equi_params(hidden, layout)


def mlp_flops(layout: Layout, m: int, tokens: int) -> int:
    hidden = Layout(4 * m, 4 * m, 2 * layout.ns)
    pairs = 4 * m * tokens  # 4m operand pairs per token through both product kernels
    kernels = flops.matmul(pairs, 256, 32, passes=2) + flops.matmul(pairs, 16, 16, passes=2)
    return equi_flops(layout, hidden, tokens) + kernels + equi_flops(hidden, layout, tokens)
