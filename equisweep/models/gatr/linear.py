"""GATr's typed token state and its equivariant linear map (with their counts).

A token's state is one tensor (..., W) laid out as [mv_e | s | mv_o]:
  mv_e  ce multivector channels (16 each) that transform as rho_u(x),
  s     ns invariant scalar channels,
  mv_o  co multivector channels that transform as det(u) rho_u(x).
Why two kinds: a Euclidean point embedded as a trivector with e123 = 1 maps under a
reflection to -rho_u(point) (the sign of e123 is an orientation that raw coordinates do not
carry), while planes and translations map to +rho_u(.). Keeping the two kinds apart (the
"o" kind = pseudo-multivectors) makes the network exactly E(3)-equivariant, reflections
included, on raw coordinates. Products follow the parity rules
  geometric product: kind(x) xor kind(y),  join: kind(x) xor kind(y) xor 1
(the join picks up det(u); GATr fixes that with a reference multivector, here the kind
absorbs it). Linear maps, norms and gates keep the kind; attention pairs channels of equal
kind.

Every equivariant linear map is a token-independent weight expansion followed by ONE dense
matmul per kind: [mv_e | s] @ A_e and mv_o @ A_o, and it is counted as such (DESIGN
section 5): the dense (16 in) x (16 out) matmul of each multivector kind, the small ones of
the scalar paths ((in_mv + in_s) x out_s into the scalars, in_s x out_mv into the
multivectors' scalar components), and the token-independent weight expansion
(out*in, 9) @ (9, 256).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from equisweep.models import flops
from equisweep.models.pga.algebra import tables


@dataclass(frozen=True)
class Layout:
    """Channel counts of a flat token state [mv_e | s | mv_o]."""

    ce: int
    co: int
    ns: int

    @property
    def width(self) -> int:
        return 16 * self.ce + self.ns + 16 * self.co

    @property
    def es(self) -> int:  # end of the [mv_e | s] block
        return 16 * self.ce + self.ns

    def split(self, h: torch.Tensor):
        """Views (mv_e (..., ce, 16), s (..., ns), mv_o (..., co, 16)). torch.split, not
        slicing: its backward concatenates instead of zero-filling a full-width gradient
        per piece."""
        e, s, o = torch.split(h, [16 * self.ce, self.ns, 16 * self.co], -1)
        return e.unflatten(-1, (self.ce, 16)), s, o.unflatten(-1, (self.co, 16))

    def join(self, e: torch.Tensor, s: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        return torch.cat([e.flatten(-2), s, o.flatten(-2)], -1)


def expand_weights(w: torch.Tensor) -> torch.Tensor:
    """(out, in, 9) coefficients of the 9 basis maps -> dense (16 in, 16 out) matrix."""
    out_c, in_c, _ = w.shape
    basis = tables(w.device, w.dtype).linear_basis.reshape(9, 256)
    dense = (w.reshape(out_c * in_c, 9) @ basis).reshape(out_c, in_c, 16, 16)  # o i k j
    return dense.permute(1, 3, 0, 2).reshape(16 * in_c, 16 * out_c)


class EquiLinear(nn.Module):
    """Equivariant linear map between typed token states (bias only where invariant)."""

    def __init__(self, lin: Layout, lout: Layout, bias: bool = True, gain: float = 1.0):
        super().__init__()
        self.lin, self.lout = lin, lout
        rank = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0, 1.0, 3.0, 3.0, 1.0])  # basis map ranks

        def mv_weight(o: int, i: int):
            if not (o and i):
                return None
            std = gain * (rank / (2.0 * i)).sqrt()
            return nn.Parameter(torch.randn(o, i, 9) * std)

        def dense(i: int, o: int):
            if not (o and i):
                return None
            return nn.Parameter(torch.randn(i, o) * (gain / math.sqrt(lin.ce + lin.ns)))

        self.w_e = mv_weight(lout.ce, lin.ce)
        self.w_o = mv_weight(lout.co, lin.co)
        self.w_s2mv = dense(lin.ns, lout.ce)
        self.w_mv2s = dense(lin.ce, lout.ns)
        self.w_s2s = dense(lin.ns, lout.ns)
        n_bias = lout.ce + lout.ns
        self.bias = nn.Parameter(torch.zeros(n_bias)) if bias and n_bias else None

    def matrices(self, ref: torch.Tensor):
        """The dense (A_e, b_e, A_o) this layer multiplies by (built once per forward)."""
        lin, lout = self.lin, self.lout
        z = dict(device=ref.device, dtype=ref.dtype)
        if lin.es and lout.es:
            mv = expand_weights(self.w_e) if self.w_e is not None else torch.zeros(
                16 * lin.ce, 16 * lout.ce, **z)
            mv2s = (F.pad(self.w_mv2s[:, None, :], (0, 0, 0, 15)).reshape(16 * lin.ce, lout.ns)
                    if self.w_mv2s is not None else torch.zeros(16 * lin.ce, lout.ns, **z))
            s2mv = (F.pad(self.w_s2mv[:, :, None], (0, 15)).reshape(lin.ns, 16 * lout.ce)
                    if self.w_s2mv is not None else torch.zeros(lin.ns, 16 * lout.ce, **z))
            s2s = self.w_s2s if self.w_s2s is not None else torch.zeros(lin.ns, lout.ns, **z)
            a_e = torch.cat([torch.cat([mv, mv2s], 1), torch.cat([s2mv, s2s], 1)], 0)
        else:
            a_e = None
        b_e = None
        if self.bias is not None:
            b_mv = F.pad(self.bias[: lout.ce, None], (0, 15)).reshape(-1)
            b_e = torch.cat([b_mv, self.bias[lout.ce:]])
        a_o = expand_weights(self.w_o) if self.w_o is not None else None
        return a_e, b_e, a_o

    def forward(self, h: torch.Tensor, cols_e: torch.Tensor | None = None,
                cols_o: torch.Tensor | None = None) -> torch.Tensor:
        """[mv_e | s | mv_o] out. With cols_e / cols_o, only those output columns of the two
        kinds are computed, from the fused matrices of `matrices` (columns dropped before
        the matmul); otherwise see `_forward_split`."""
        if cols_e is None and cols_o is None:
            return self._forward_split(h)
        lin = self.lin
        a_e, b_e, a_o = self.matrices(h)
        a_e = a_e.index_select(1, cols_e)
        b_e = b_e.index_select(0, cols_e) if b_e is not None else None
        a_o = a_o.index_select(1, cols_o)
        lead = h.shape[:-1]
        h_e, h_o = torch.split(h, [lin.es, 16 * lin.co], -1)
        out_e = (torch.addmm(b_e, h_e.reshape(-1, lin.es), a_e).reshape(*lead, -1)
                 if b_e is not None else h_e @ a_e)
        return torch.cat([out_e, h_o @ a_o], -1)

    def _forward_split(self, h: torch.Tensor) -> torch.Tensor:
        """ONE dense matmul per kind for the multivectors, (16 in) x (16 out) from the 9
        basis maps, and one small matmul for what reaches or leaves the scalars: the
        scalar channels and the multivectors' scalar components (the fused matrix of
        `matrices` would multiply mostly zeros there)."""
        lin, lout = self.lin, self.lout
        lead = h.shape[:-1]
        mv_e, s, mv_o = torch.split(h, [16 * lin.ce, lin.ns, 16 * lin.co], -1)
        parts = []
        if lout.ce:
            out_mv = (mv_e @ expand_weights(self.w_e) if self.w_e is not None
                      else h.new_zeros(*lead, 16 * lout.ce))
            scal = out_mv.view(*lead, lout.ce, 16)[..., 0]  # in-place: mm saved no output
            if self.w_s2mv is not None:
                scal += s @ self.w_s2mv
            if self.bias is not None:
                scal += self.bias[: lout.ce]
            parts.append(out_mv)
        if lout.ns:
            blocks = [w for w in (self.w_mv2s, self.w_s2s) if w is not None]
            if blocks:
                inv = torch.cat([mv_e.view(*lead, lin.ce, 16)[..., 0], s], -1)
                out_s = inv @ torch.cat(blocks)
            else:
                out_s = h.new_zeros(*lead, lout.ns)
            if self.bias is not None:
                out_s = out_s + self.bias[lout.ce:]
            parts.append(out_s)
        if lout.co:
            parts.append(mv_o @ expand_weights(self.w_o) if self.w_o is not None
                         else h.new_zeros(*lead, 16 * lout.co))
        return parts[0] if len(parts) == 1 else torch.cat(parts, -1)




def equi_params(lin: Layout, lout: Layout, bias: bool = True) -> int:
    """Trainable parameters of EquiLinear(lin, lout, bias)."""
    n = 9 * (lin.ce * lout.ce + lin.co * lout.co)
    n += lin.ns * lout.ce + lin.ce * lout.ns + lin.ns * lout.ns
    return n + ((lout.ce + lout.ns) if bias else 0)


def equi_flops(lin: Layout, lout: Layout, tokens: int, input_grad: bool = True,
               cols: tuple[int, int] | None = None) -> int:
    """Training FLOPs of one EquiLinear on `tokens` tokens. cols: the (rho, det) output
    columns computed by a layer that keeps only some (then the fused [mv | s] matrix is
    used, see EquiLinear.forward); otherwise one matmul per multivector kind and one for the
    scalar paths. input_grad False: the input is the batch (no gradient flows into it)."""
    passes = 3 if input_grad else 2

    def mm(k: int, n: int) -> int:
        return flops.matmul(tokens, k, n, passes)

    if cols is not None:
        n = mm(lin.es, cols[0]) + mm(16 * lin.co, cols[1] if lout.co else 0)
    else:
        n = mm(16 * lin.ce, 16 * lout.ce) + mm(lin.ns, lout.ce)
        n += mm(lin.ce + lin.ns, lout.ns) + mm(16 * lin.co, 16 * lout.co)
    # weight expansion: forward + gradient w.r.t. the weights (the basis is constant)
    return n + flops.matmul(lin.ce * lout.ce + lin.co * lout.co, 9, 256, passes=2)
