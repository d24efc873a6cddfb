"""GATr layers on a flat, typed token state.

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
absorbs it). With co = 0 everything is plain GATr.

Every equivariant linear map is a token-independent weight expansion followed by ONE dense
matmul per kind: [mv_e | s] @ A_e and mv_o @ A_o.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from equisweep.models.pga.algebra import E0123, INNER_INDEX, tables

_DIST_TRI = (11, 12, 13)  # e012, e013, e023: the Euclidean part of a point trivector
_E123 = 14


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

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        lin, lout = self.lin, self.lout
        a_e, b_e, a_o = self.matrices(h)
        lead = h.shape[:-1]
        h_e, h_o = torch.split(h, [lin.es, 16 * lin.co], -1)
        parts = []
        if lout.es:
            if a_e is None:
                out_e = h.new_zeros(*lead, lout.es)
                out_e = out_e + b_e if b_e is not None else out_e
            elif b_e is not None:
                out_e = torch.addmm(b_e, h_e.reshape(-1, lin.es), a_e).reshape(*lead, lout.es)
            else:
                out_e = h_e @ a_e
            parts.append(out_e)
        if lout.co:
            parts.append(h_o @ a_o if a_o is not None else h.new_zeros(*lead, 16 * lout.co))
        return parts[0] if len(parts) == 1 else torch.cat(parts, -1)


def equi_layer_norm(h: torch.Tensor, layout: Layout, eps: float = 0.01) -> torch.Tensor:
    """x / sqrt(mean over mv channels of <x, x>) on both kinds; plain layer norm on scalars."""
    e, s, o = layout.split(h)
    inner = tables(h.device, h.dtype).inner
    sq = (e * e * inner).sum((-1, -2)) + (o * o * inner).sum((-1, -2))
    scale = torch.rsqrt((sq / max(layout.ce + layout.co, 1)).clamp(min=eps))[..., None, None]
    s = F.layer_norm(s, s.shape[-1:]) if layout.ns else s
    return layout.join(e * scale, s, o * scale)


def gated_gelu(e: torch.Tensor, o: torch.Tensor):
    """Scale each multivector by GELU of an invariant of it: the scalar part of the rho kind,
    the pseudoscalar part of the det kind (both invariant under their action)."""
    ge = F.gelu(e[..., :1], approximate="tanh") * e
    go = F.gelu(o[..., E0123:E0123 + 1], approximate="tanh") * o
    return ge, go


_CHUNK_ROWS = 4096  # keeps each (rows, 256) outer product near 8 MiB: reused, not faulted in


class _ProductKernels(torch.autograd.Function):
    """out[p, r] = outer(left[p, r], right[p, r]) @ kern[p] for p in (geometric, join).

    Autograd through the plain expression would keep and re-materialise several (rows, 256)
    temporaries; here the forward and the backward walk the rows in chunks and only the
    16-wide operands are saved.
    """

    @staticmethod
    def forward(ctx, left, right, kern):
        ctx.save_for_backward(left, right, kern)
        out = left.new_empty(2, left.shape[1], 16)
        for lo in range(0, left.shape[1], _CHUNK_ROWS):
            hi = min(lo + _CHUNK_ROWS, left.shape[1])
            outer = left[:, lo:hi, :, None] * right[:, lo:hi, None, :]
            torch.bmm(outer.reshape(2, hi - lo, 256), kern, out=out[:, lo:hi])
        return out

    @staticmethod
    def backward(ctx, grad):
        left, right, kern = ctx.saved_tensors
        kern_t = kern.transpose(1, 2)
        g_left, g_right = torch.empty_like(left), torch.empty_like(right)
        for lo in range(0, left.shape[1], _CHUNK_ROWS):
            hi = min(lo + _CHUNK_ROWS, left.shape[1])
            g_outer = torch.bmm(grad[:, lo:hi], kern_t).view(2, hi - lo, 16, 16)
            torch.matmul(g_outer, right[:, lo:hi, :, None], out=g_left[:, lo:hi, :, None])
            torch.matmul(left[:, lo:hi, None, :], g_outer, out=g_right[:, lo:hi, None, :])
        return g_left, g_right, None


def bilinear_pairs(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """left, right (2, n, 16): geometric products [0] and joins [1] of paired rows, each the
    dense 16x16x16 table contracted with the outer product of the pair."""
    tab = tables(left.device, left.dtype)
    kern = torch.stack([tab.geometric, tab.join]).reshape(2, 256, 16)
    return _ProductKernels.apply(left.contiguous(), right.contiguous(), kern)


class GeometricMLP(nn.Module):
    """Bilinear (geometric products and joins of all four kind pairings) -> gated GELU ->
    equivariant linear. Hidden: 4m channels of each kind; scalars ns -> 2 ns -> ns."""

    def __init__(self, layout: Layout, m: int, out_gain: float):
        super().__init__()
        self.layout, self.m = layout, m
        self.hidden = Layout(4 * m, 4 * m, 2 * layout.ns)
        # operands: 8 groups of m per kind (see forward for the pairing)
        self.operands = EquiLinear(layout, Layout(8 * m, 8 * m, 2 * layout.ns))
        self.out = EquiLinear(self.hidden, layout, gain=out_gain)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        m = self.m
        ops = Layout(8 * m, 8 * m, self.hidden.ns)
        e, s, o = ops.split(self.operands(h))
        lead = e.shape[:-2]
        e = e.unflatten(-2, (8, m)).movedim(-3, 0)  # (8, ..., m, 16)
        o = o.unflatten(-2, (8, m)).movedim(-3, 0)
        # pairs in order ee, oo, eo, oe; GP kinds e, e, o, o; join kinds o, o, e, e
        left = torch.stack([e[0], o[0], e[1], o[1], e[4], o[4], e[5], o[5]])
        right = torch.stack([e[2], o[2], o[3], e[3], e[6], o[6], o[7], e[7]])
        prod = bilinear_pairs(left.reshape(2, -1, 16), right.reshape(2, -1, 16))
        prod = prod.reshape(2, 4, *lead, m, 16)
        gp, jn = prod[0], prod[1]
        he = torch.cat([gp[0], gp[1], jn[2], jn[3]], -2)
        ho = torch.cat([jn[0], jn[1], gp[2], gp[3]], -2)
        he, ho = gated_gelu(he, ho)
        s = F.gelu(s, approximate="tanh")
        return self.out(self.hidden.join(he, s, ho))


def _distance_features(mv: torch.Tensor, query: bool) -> torch.Tensor:
    """Five features with q . k = -sum_i (p_q,i w_k - p_k,i w_q)^2 for the trivector parts
    (p, w = e123): minus the squared distance of the points times w_q^2 w_k^2, an invariant
    that needs no division by w."""
    p = mv[..., _DIST_TRI]
    w = mv[..., _E123:_E123 + 1]
    pp = (p * p).sum(-1, keepdim=True)
    ww = w * w
    if query:
        return torch.cat([pp, ww, w * p], -1)
    return torch.cat([-ww, -pp, 2.0 * w * p], -1)


class GeometricAttention(nn.Module):
    """Multi-query self-attention: per head, queries see keys through the invariant inner
    product of their multivectors, distance features of their points, and scalars."""

    def __init__(self, layout: Layout, heads: int, hidden_mv: int, hidden_s: int,
                 out_gain: float):
        super().__init__()
        self.layout, self.heads = layout, heads
        self.a = hidden_mv - hidden_mv // 2  # rho-kind channels per head
        self.b = hidden_mv // 2  # det-kind channels per head
        self.hs = hidden_s
        a, b, hs = self.a, self.b, self.hs
        self.qkv = EquiLinear(layout, Layout((heads + 2) * a, (heads + 2) * b, (heads + 2) * hs))
        self.log_dist = nn.Parameter(torch.zeros(heads, a + b))
        self.body_bias = nn.Parameter(torch.zeros(heads))
        dv = 16 * (a + b) + hs
        self.out = EquiLinear(Layout(heads * a, heads * b, heads * hs), layout, gain=out_gain)
        # attention output (..., H, dv) -> flat [mv_e | s | mv_o] input of `out`
        idx = torch.arange(heads * dv).reshape(heads, dv)
        perm = torch.cat([idx[:, : 16 * a].reshape(-1), idx[:, 16 * (a + b):].reshape(-1),
                          idx[:, 16 * a: 16 * (a + b)].reshape(-1)])
        self.register_buffer("perm", perm, persistent=False)

    def features(self, mv: torch.Tensor, query: bool) -> torch.Tensor:
        ip = mv[..., INNER_INDEX]
        dist = _distance_features(mv, query)
        if query:
            dist = dist * self.log_dist.exp()[..., None]
        return torch.cat([ip, dist], -1).flatten(-2)

    def forward(self, h: torch.Tensor, key_ok: torch.Tensor,
                same_body: torch.Tensor | None = None) -> torch.Tensor:
        """h (B, T, W); key_ok (B, T) bool (False on padding); same_body (B, T, T) or None."""
        B, T = h.shape[:2]
        H, a, b, hs = self.heads, self.a, self.b, self.hs
        e, s, o = Layout((H + 2) * a, (H + 2) * b, (H + 2) * hs).split(self.qkv(h))
        qe, ke, ve = e[..., : H * a, :], e[..., H * a: (H + 1) * a, :], e[..., (H + 1) * a:, :]
        qo, ko, vo = o[..., : H * b, :], o[..., H * b: (H + 1) * b, :], o[..., (H + 1) * b:, :]
        qs, ks, vs = s[..., : H * hs], s[..., H * hs: (H + 1) * hs], s[..., (H + 1) * hs:]
        qmv = torch.cat([qe.unflatten(-2, (H, a)), qo.unflatten(-2, (H, b))], -2)  # B T H c 16
        kmv = torch.cat([ke, ko], -2)
        q = torch.cat([self.features(qmv, True), qs.unflatten(-1, (H, hs))], -1)
        k = torch.cat([self.features(kmv, False), ks], -1)
        v = torch.cat([ve.flatten(-2), vo.flatten(-2), vs], -1)
        mask = attention_mask(key_ok, same_body, self.body_bias, h.dtype)
        out = F.scaled_dot_product_attention(
            q.reshape(B, 1, T * H, -1), k[:, None], v[:, None], attn_mask=mask)
        out = out.reshape(B, T, -1).index_select(-1, self.perm)
        return self.out(out)


def attention_mask(key_ok: torch.Tensor, same_body: torch.Tensor | None,
                   body_bias: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask (B, 1, T*H, T) for queries laid out token-major, head-minor: -inf on
    padded keys, a learned per-head bias between tokens of the same body."""
    B, T = key_ok.shape
    H = body_bias.shape[0]
    if same_body is None:
        bias = torch.zeros(B, T, H, T, dtype=dtype, device=key_ok.device)
    else:
        bias = same_body.to(dtype)[:, :, None, :] * body_bias.to(dtype)[None, None, :, None]
    bias = bias.masked_fill(~key_ok[:, None, None, :], float("-inf"))
    return bias.reshape(B, 1, T * H, T)
