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
absorbs it). Linear maps, norms and gates keep the kind; attention pairs channels of equal
kind.

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


_CHUNK_ROWS = 8192  # keeps each (rows, 256) outer product at 8 MiB: reused, not faulted in


class _ProductKernels(torch.autograd.Function):
    """out[r] = outer(left[r], right[r]) @ kern: the geometric product and the join of each
    pair of rows, as the dense (256, 32) stack of both 16x16x16 tables.

    Autograd through the plain expression would keep and re-materialise several (rows, 256)
    temporaries; here the forward and the backward walk the rows in chunks and only the
    16-wide operands are saved.
    """

    @staticmethod
    def forward(ctx, left, right, kern):
        ctx.save_for_backward(left, right, kern)
        rows = left.shape[0]
        out = left.new_empty(rows, kern.shape[1])
        for lo in range(0, rows, _CHUNK_ROWS):
            hi = min(lo + _CHUNK_ROWS, rows)
            outer = left[lo:hi, :, None] * right[lo:hi, None, :]
            torch.mm(outer.reshape(hi - lo, 256), kern, out=out[lo:hi])
        return out

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


# Components a query/key needs: the invariant inner product's (no e0) and, for distances,
# the point part e012, e013, e023 with e123 (already among the inner-product ones).
_QK_COMPONENTS = INNER_INDEX + (11, 12, 13)
_N_QK = len(_QK_COMPONENTS)  # 11; [:8] inner product, [7] = e123, [8:11] point part


def _distance_features(x: torch.Tensor, query: bool) -> torch.Tensor:
    """Five features with q . k = -sum_i (p_q,i w_k - p_k,i w_q)^2 for the trivector parts
    (p, w = e123): minus the squared distance of the points times w_q^2 w_k^2, an invariant
    that needs no division by w. x holds the _QK_COMPONENTS."""
    p = x[..., 8:11]
    w = x[..., 7:8]
    pp = (p * p).sum(-1, keepdim=True)
    ww = w * w
    if query:
        return torch.cat([pp, ww, w * p], -1)
    return torch.cat([-ww, -pp, 2.0 * w * p], -1)


class GeometricAttention(nn.Module):
    """Multi-query self-attention: per head, queries see keys through the invariant inner
    product of their multivectors, distance features of their points, and scalars. Heads are
    folded into the query axis, so one SDPA call with one shared key/value head does it."""

    def __init__(self, layout: Layout, heads: int, hidden_mv: int, hidden_s: int,
                 out_gain: float):
        super().__init__()
        self.layout, self.heads = layout, heads
        self.a = hidden_mv - hidden_mv // 2  # rho-kind channels per head
        self.b = hidden_mv // 2  # det-kind channels per head
        self.hs = hidden_s
        H, a, b, hs = heads, self.a, self.b, self.hs
        self.qkv = EquiLinear(layout, Layout((H + 2) * a, (H + 2) * b, (H + 2) * hs))
        self.log_dist = nn.Parameter(torch.zeros(heads, a + b))
        self.body_bias = nn.Parameter(torch.zeros(heads))
        self.out = EquiLinear(Layout(H * a, H * b, H * hs), layout, gain=out_gain)
        self.register_buffer("cols_e", qkv_columns(H, a, hs), persistent=False)
        self.register_buffer("cols_o", qkv_columns(H, b, 0), persistent=False)

    def features(self, x: torch.Tensor, query: bool) -> torch.Tensor:
        dist = _distance_features(x, query)
        if query:
            dist = dist * self.log_dist.exp()[..., None]
        return torch.cat([x[..., :8], dist], -1).flatten(-2)

    def forward(self, h: torch.Tensor, key_ok: torch.Tensor,
                same_body: torch.Tensor | None = None) -> torch.Tensor:
        """h (B, T, W); key_ok (B, T) bool (False on padding); same_body (B, T, T) or None."""
        B, T = h.shape[:2]
        H, a, b, hs = self.heads, self.a, self.b, self.hs
        n = _N_QK
        proj = self.qkv(h, self.cols_e, self.cols_o)
        qe, ke, ve, qs, ks, vs, qo, ko, vo = torch.split(
            proj, [H * a * n, a * n, 16 * a, H * hs, hs, hs, H * b * n, b * n, 16 * b], -1)
        qmv = torch.cat([qe.unflatten(-1, (H, a, n)), qo.unflatten(-1, (H, b, n))], -2)
        kmv = torch.cat([ke.unflatten(-1, (a, n)), ko.unflatten(-1, (b, n))], -2)
        q = torch.cat([self.features(qmv, True), qs.unflatten(-1, (H, hs))], -1)
        k = torch.cat([self.features(kmv, False), ks], -1)
        v = torch.cat([ve, vo, vs], -1)
        mask = attention_mask(key_ok, same_body, self.body_bias, h.dtype)
        out = F.scaled_dot_product_attention(
            q.reshape(B, 1, T * H, -1), k[:, None], v[:, None], attn_mask=mask)
        e, o, s = torch.split(out.reshape(B, T, H, -1), [16 * a, 16 * b, hs], -1)
        return self.out(torch.cat([e.flatten(-2), s.flatten(-2), o.flatten(-2)], -1))


def qkv_columns(heads: int, c: int, hs: int) -> torch.Tensor:
    """Output columns of the fused q/k/v projection that attention uses: the _QK_COMPONENTS
    of the (heads + 1) c query and key channels, all 16 of the c value channels, then the
    scalars."""
    comps = torch.tensor(_QK_COMPONENTS)
    qk = (torch.arange((heads + 1) * c)[:, None] * 16 + comps).reshape(-1)
    v = torch.arange((heads + 1) * c * 16, (heads + 2) * c * 16)
    s = (heads + 2) * c * 16 + torch.arange((heads + 2) * hs)
    return torch.cat([qk, v, s])


def attention_mask(key_ok: torch.Tensor, same_body: torch.Tensor | None,
                   body_bias: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive mask (B, 1, T*H, T) for queries laid out token-major, head-minor: -inf on
    padded keys, a learned per-head bias between tokens of the same body."""
    B, T = key_ok.shape
    H = body_bias.shape[0]
    pad = torch.zeros(B, 1, 1, T, dtype=dtype, device=key_ok.device)
    pad = pad.masked_fill(~key_ok[:, None, None, :], float("-inf"))
    if same_body is None:
        return pad.expand(B, T, H, T).reshape(B, 1, T * H, T)
    same = same_body.to(dtype)[:, :, None, :]
    mask = torch.addcmul(pad, same, body_bias.to(dtype)[None, None, :, None])
    return mask.reshape(B, 1, T * H, T)
