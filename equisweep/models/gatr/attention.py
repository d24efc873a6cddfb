"""GATr's geometric self-attention (multi-query, distance-aware) with its counts.

Counted as: the fused q/k/v projection restricted to the columns attention reads (see
qkv_columns), QK^T and AV as matmuls over the folded heads, and the output EquiLinear.
"""

from __future__ import annotations

import torch
from torch import nn

from equisweep.models import flops
from equisweep.models.gatr.linear import EquiLinear, Layout, equi_flops, equi_params
from equisweep.models.masks import body_attention
from equisweep.models.pga.algebra import INNER_INDEX

# Components a query/key needs: the invariant inner product's (no e0) and, for distances,
# the point part e012, e013, e023 with e123 (already among the inner-product ones).
QK_COMPONENTS = INNER_INDEX + (11, 12, 13)
N_QK = len(QK_COMPONENTS)  # 11; [:8] inner product, [7] = e123, [8:11] point part


def _distance_features(x: torch.Tensor, query: bool) -> torch.Tensor:
    """Five features with q . k = -sum_i (p_q,i w_k - p_k,i w_q)^2 for the trivector parts
    (p, w = e123): minus the squared distance of the points times w_q^2 w_k^2, an invariant
    that needs no division by w. x holds the QK_COMPONENTS."""
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
    folded into the query axis, so one score matmul with one shared key/value head does it."""

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
        n = N_QK
        proj = self.qkv(h, self.cols_e, self.cols_o)
        qe, ke, ve, qs, ks, vs, qo, ko, vo = torch.split(
            proj, [H * a * n, a * n, 16 * a, H * hs, hs, hs, H * b * n, b * n, 16 * b], -1)
        qmv = torch.cat([qe.unflatten(-1, (H, a, n)), qo.unflatten(-1, (H, b, n))], -2)
        kmv = torch.cat([ke.unflatten(-1, (a, n)), ko.unflatten(-1, (b, n))], -2)
        q = torch.cat([self.features(qmv, True), qs.unflatten(-1, (H, hs))], -1)
        k = torch.cat([self.features(kmv, False), ks], -1)
        v = torch.cat([ve, vo, vs], -1)
        out = body_attention(q, k, v, key_ok, same_body, self.body_bias)
        e, o, s = torch.split(out, [16 * a, 16 * b, hs], -1)
        return self.out(torch.cat([e.flatten(-2), s.flatten(-2), o.flatten(-2)], -1))


def qkv_columns(heads: int, c: int, hs: int) -> torch.Tensor:
    """Output columns of the fused q/k/v projection that attention uses: the QK_COMPONENTS
    of the (heads + 1) c query and key channels, all 16 of the c value channels, then the
    scalars."""
    comps = torch.tensor(QK_COMPONENTS)
    qk = (torch.arange((heads + 1) * c)[:, None] * 16 + comps).reshape(-1)
    v = torch.arange((heads + 1) * c * 16, (heads + 2) * c * 16)
    s = (heads + 2) * c * 16 + torch.arange((heads + 2) * hs)
    return torch.cat([qk, v, s])


def _attention_layouts(layout: Layout, heads: int, a: int, b: int, hs: int):
    return Layout((heads + 2) * a, (heads + 2) * b, (heads + 2) * hs), \
        Layout(heads * a, heads * b, heads * hs)


def attention_params(layout: Layout, heads: int, hidden_mv: int, hidden_s: int) -> int:
    a, b = hidden_mv - hidden_mv // 2, hidden_mv // 2
    qkv, out = _attention_layouts(layout, heads, a, b, hidden_s)
    return (equi_params(layout, qkv) + heads * (a + b) + heads
            + equi_params(out, layout))


def attention_flops(layout: Layout, heads: int, hidden_mv: int, hidden_s: int,
                    tokens: int, batch_size: int) -> int:
    """One attention layer on batch_size scenes of `tokens` tokens."""
    H, a, b, hs = heads, hidden_mv - hidden_mv // 2, hidden_mv // 2, hidden_s
    qkv, out = _attention_layouts(layout, H, a, b, hs)
    n = batch_size * tokens
    kept = ((H + 1) * a * N_QK + 16 * a + (H + 2) * hs, (H + 1) * b * N_QK + 16 * b)
    dq = 13 * (a + b) + hs  # 8 inner-product + 5 distance features per channel, scalars
    dv = 16 * (a + b) + hs
    return (equi_flops(layout, qkv, n, cols=kept)
            + flops.attention(batch_size, tokens * H, tokens, dq, dv)
            + equi_flops(out, layout, n))
