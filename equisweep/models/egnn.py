"""EGNN: an E(n)-equivariant graph network (Satorras, Hoogeboom & Welling 2021,
arXiv 2102.09844) over the vertex tokens, the third family of the study.

It asks what GATr's advantage is made of: an EGNN is equivariant by construction, with no
geometric algebra and no attention, so "GATr vs transformer" can be split into "equivariant
vs not" and "GATr vs another equivariant net".

Size dict (defaults filled by `validate_size("egnn", size)`):
  width  channels of the node features h_i and the messages m_ij (>= 1)
  depth  message-passing layers (>= 1)

The graph is fully connected within a scene: every pair of distinct real tokens is an edge,
padding is no node of it. Each node carries invariant features h_i and a position x_i,
starting at x1. A layer (the paper's equations 3-6, with a pre-norm and two extra
equivariant vectors) does

    m_ij = SiLU(W_m SiLU(A LN(h_i) + B LN(h_j) + C e_ij + c))             messages
    h_i <- h_i + phi_h([LN(h_i), mean_j m_ij])                              node update
    x_i <- x_i + mean_j (x_i - x_j) phi_x(m_ij) / sqrt(1 + |x_i - x_j|^2)
               + phi_v(h_i) (x1_i - x0_i) + phi_u(h_i) up                   coordinate update

with e_ij the invariant edge features |x_i - x_j|^2 (current positions), |x0_i - x0_j|^2,
|v_i - v_j|^2 with v = x1 - x0, the vertical offset (x1_i - x1_j) . up and the same-body
flag, and h_i initialised from the invariant node features: the heights of x0, x1, c0, c1
above the floor along `up`, and the length and vertical part of x1 - x0, c1 - c0 and
x1 - c1. Means run over a node's real neighbours, so padding never changes a real
prediction and scenes of any size see messages of the same scale. The 1/sqrt(1 + d^2)
factor is the paper's normalisation of relative vectors made smooth at d = 0.

Every input enters as an invariant (scalars) or along an equivariant vector (x_i - x_j,
x1 - x0, up), so under g = (R, t) in E(3), reflections included, with the floor and up
moving with the scene, the prediction x_L = x1 + displacement moves as R x + t exactly.
Body identity enters only as the same-body flag, so relabelling bodies changes nothing.

Memory: the edge tensors are dense (B, V, V, width); a training step keeps about four of
them per layer, 16 B V^2 width depth bytes in float32 (1.3 GB at B = 16, V = 80,
width 128, depth 6, the top of the ladder; one measured CPU step peaked 1.35 GB above the
model). Fine at the task's V <= ~80 tokens per scene; larger scenes would want a sparse
neighbour list instead.

FLOPs (DESIGN section 5, counted beside the model like every family): the per-node linear
maps on B V rows, the per-edge ones (edge features, message, phi_x) on B V^2 rows, as the
dense computation performs them; the first layer's edge-feature product reads only the
batch, so its input gradient is not computed (2x, not 3x). The sums over neighbours and
the distances are element-wise and not counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from equisweep.models import flops, nominal
from equisweep.models.family import Family
from equisweep.models.masks import keep_real, pair_mask, same_body
from equisweep.models.scene import Scene

N_NODE = 10  # invariant node features
N_EDGE = 5  # invariant edge features: d^2 now, d0^2, |v_i - v_j|^2, vertical offset, body
_CHUNK_BYTES = 8 << 20  # edge tensors per chunk of scenes (see EGNNLayer.forward)


@dataclass(frozen=True)
class EGNNDims:
    width: int
    depth: int

    @classmethod
    def of(cls, size: dict) -> EGNNDims:
        return cls(int(size["width"]), int(size["depth"]))


def node_features(sc: Scene) -> torch.Tensor:
    """(B, V, N_NODE) invariants of each token."""
    v, dc, r = sc.x1 - sc.x0, sc.c1 - sc.c0, sc.x1 - sc.c1
    return torch.stack([sc.height(sc.x1), sc.height(sc.x0), sc.height(sc.c1),
                        sc.height(sc.c0), v.norm(dim=-1), sc.along_up(v),
                        dc.norm(dim=-1), sc.along_up(dc), r.norm(dim=-1), sc.along_up(r)], -1)


def _pairwise(p: torch.Tensor) -> torch.Tensor:
    """(B, V, V, 3) differences p_i - p_j."""
    return p[:, :, None, :] - p[:, None, :, :]


def static_edge_features(sc: Scene, same: torch.Tensor) -> torch.Tensor:
    """(B, V, V, N_EDGE - 1) invariants of each token pair that the layers do not change."""
    d0 = _pairwise(sc.x0)
    dv = _pairwise(sc.x1 - sc.x0)
    dh = sc.along_up(sc.x1)
    return torch.stack([(d0 * d0).sum(-1), (dv * dv).sum(-1),
                        dh[:, :, None] - dh[:, None, :], same.to(sc.x1.dtype)], -1)


class EGNNLayer(nn.Module):
    def __init__(self, d: EGNNDims):
        super().__init__()
        w = d.width
        self.pair = nn.Linear(w, 2 * w, bias=False)  # A h_i and B h_j, computed per node
        self.edge = nn.Linear(N_EDGE, w)
        self.msg = nn.Linear(w, w)
        self.node_in = nn.Linear(2 * w, w)
        self.node_out = nn.Linear(w, w)
        self.coord = nn.Linear(w, 1)  # phi_x: weight of each relative vector
        self.vec = nn.Linear(w, 2)  # phi_v, phi_u: weights of x1 - x0 and of up
        small = 0.1 / math.sqrt(w)  # the prediction starts near x1, the residual near h
        for lin in (self.node_out, self.coord, self.vec):
            nn.init.normal_(lin.weight, std=small / math.sqrt(d.depth))
            nn.init.zeros_(lin.bias)

    def edges(self, a, b, x, static, pairs):
        """The edge part of the layer for some scenes: per node, the sum of its messages
        (B, V, w) and of its weighted relative vectors (B, V, 3)."""
        rel = _pairwise(x)
        d2 = (rel * rel).sum(-1, keepdim=True)
        pre = self.edge(torch.cat([d2, static], -1))
        pre = pre + a[:, :, None, :] + b[:, None, :, :]
        m = torch.where(pairs[..., None], F.silu(self.msg(F.silu(pre))), 0.0)
        weight = torch.where(pairs, self.coord(m).squeeze(-1), 0.0) * torch.rsqrt(
            1.0 + d2.squeeze(-1))
        return m.sum(2), (weight[..., None] * rel).sum(2)

    def forward(self, h, x, static, sc: Scene, pairs, count):
        """h (B, V, w) node features, x (B, V, 3) positions; static (B, V, V, 4); pairs
        (B, V, V) bool edges; count (B, V, 1) real neighbours (at least 1)."""
        hn = F.layer_norm(h, h.shape[-1:])
        a, b = self.pair(hn).chunk(2, -1)
        # The (B, V, V, w) edge tensors, a few scenes at a time: on CPU an allocation over
        # glibc's mmap threshold (32 MiB) is page-faulted in afresh on every step (that
        # cost as much as the arithmetic); below it the heap reuses its memory.
        V, w = h.shape[1], h.shape[2]
        step = max(1, _CHUNK_BYTES // (V * V * w * h.element_size()))
        parts = [self.edges(a[i:i + step], b[i:i + step], x[i:i + step], static[i:i + step],
                            pairs[i:i + step]) for i in range(0, h.shape[0], step)]
        msg, rel = (torch.cat(p) if len(parts) > 1 else p[0] for p in zip(*parts))
        h = h + self.node_out(F.silu(self.node_in(torch.cat([hn, msg / count], -1))))
        s = self.vec(h)
        dx = rel / count + s[..., :1] * (sc.x1 - sc.x0) + s[..., 1:] * sc.up
        return h, x + dx


class EGNN(nn.Module):
    """The task model: batch dict (DESIGN section 10) -> predicted positions (B, V, 3)."""

    def __init__(self, size: dict):
        super().__init__()
        self.dims = d = EGNNDims.of(size)
        self.embed = nn.Linear(N_NODE, d.width)
        self.layers = nn.ModuleList(EGNNLayer(d) for _ in range(d.depth))

    def forward(self, batch: dict) -> torch.Tensor:
        sc = Scene.of(batch)
        mask = batch["mask"]
        pairs = pair_mask(mask)
        count = pairs.sum(-1, keepdim=True).clamp(min=1).to(sc.x1.dtype)
        static = static_edge_features(sc, same_body(batch))
        h, x = self.embed(node_features(sc)), sc.x1
        for layer in self.layers:
            h, x = layer(h, x, static, sc, pairs, count)
        return keep_real(x, mask)


def egnn_params(size: dict) -> int:
    """Exact trainable parameters of EGNN(size)."""
    w, lp = EGNNDims.of(size).width, flops.linear_params
    layer = (lp(w, 2 * w, bias=False) + lp(N_EDGE, w) + lp(w, w) + lp(2 * w, w) + lp(w, w)
             + lp(w, 1) + lp(w, 2))
    return lp(N_NODE, w) + size["depth"] * layer


def egnn_flops(size: dict, tokens: int, batch_size: int) -> int:
    """Training FLOPs of one step on batch_size scenes of `tokens` tokens."""
    d = EGNNDims.of(size)
    w, mm = d.width, flops.matmul
    nodes, edges = batch_size * tokens, batch_size * tokens * tokens
    per_layer = (mm(nodes, w, 2 * w) + mm(edges, w, w) + mm(edges, w, 1)
                 + mm(nodes, 2 * w, w) + mm(nodes, w, w) + mm(nodes, w, 2))
    edge_in = mm(edges, N_EDGE, w, passes=2) + (d.depth - 1) * mm(edges, N_EDGE, w)
    return mm(nodes, N_NODE, w, passes=2) + d.depth * per_layer + edge_in


FAMILY = Family(
    "egnn",
    size_keys={"width": None, "depth": None},
    ladder=({"width": 8, "depth": 1}, {"width": 16, "depth": 1}, {"width": 16, "depth": 2},
            {"width": 32, "depth": 2}, {"width": 48, "depth": 3}, {"width": 64, "depth": 4},
            {"width": 96, "depth": 4}, {"width": 128, "depth": 6}),
    model=EGNN, params=egnn_params, flops=egnn_flops, nominal=nominal.egnn,
    equivariant=True, group="E(3)",
)
