"""Baseline pre-LayerNorm transformer over the same vertex tokens.

Size dict (defaults filled by `validate_size("transformer", size)`):
  width        model channels (divisible by heads)
  depth        number of blocks
  heads        attention heads (default: 8, or the largest divisor of width below 8)
  fourier      random Fourier features per point coordinate set (default 0 = off): each of
               x0, x1, c0, c1 adds sin/cos of `fourier` fixed random projections
  multi_query  one shared key/value head (default true)
  mlp_ratio    hidden width of the GELU MLP as a multiple of width (default 2)

Per-token features: x0, x1, c0, c1, x1 - x0, c1 - c0, x1 - c1, heights of x0, x1, c0, c1
above the floor, the vertical part of x1 - x0, `up`, floor_point. Body identity enters only
as a learned per-head attention bias between tokens of the same body. LayerNorms have no
affine parameters (as in the GATr repository's baseline). The prediction is x1 + d with d
read out linearly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from equisweep.errors import UserError
from equisweep.models import flops, nominal
from equisweep.models.family import Family
from equisweep.models.masks import body_attention, keep_real, same_body
from equisweep.models.scene import Scene

N_FEATURES = 32
FOURIER_SCALE = 1.0


def default_heads(width: int) -> int:
    return max(h for h in range(1, 9) if width % h == 0)


@dataclass(frozen=True)
class TransformerDims:
    width: int
    depth: int
    heads: int
    fourier: int
    multi_query: bool
    mlp_ratio: int

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def kv_heads(self) -> int:
        return 1 if self.multi_query else self.heads

    @property
    def in_features(self) -> int:
        return N_FEATURES + 8 * self.fourier

    @classmethod
    def of(cls, size: dict) -> TransformerDims:
        return cls(int(size["width"]), int(size["depth"]), int(size["heads"]),
                   int(size["fourier"]), bool(size["multi_query"]), int(size["mlp_ratio"]))


class Block(nn.Module):
    def __init__(self, d: TransformerDims):
        super().__init__()
        self.d = d
        self.q = nn.Linear(d.width, d.width)
        self.kv = nn.Linear(d.width, 2 * d.kv_heads * d.head_dim)
        self.o = nn.Linear(d.width, d.width)
        self.body_bias = nn.Parameter(torch.zeros(d.heads))
        self.fc1 = nn.Linear(d.width, d.mlp_ratio * d.width)
        self.fc2 = nn.Linear(d.mlp_ratio * d.width, d.width)
        for lin in (self.o, self.fc2):  # small residual branches at init
            nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * d.depth))
            nn.init.zeros_(lin.bias)

    def attention(self, x, key_ok, same_body):
        d = self.d
        B, T, _ = x.shape
        H, hd = d.heads, d.head_dim
        q = self.q(x).reshape(B, T, H, hd)
        k, v = self.kv(x).chunk(2, -1)
        if not d.multi_query:
            k, v = k.reshape(B, T, H, hd), v.reshape(B, T, H, hd)
        out = body_attention(q, k, v, key_ok, same_body, self.body_bias)
        return self.o(out.reshape(B, T, d.width))

    def forward(self, x, key_ok, same_body):
        w = self.d.width
        x = x + self.attention(F.layer_norm(x, (w,)), key_ok, same_body)
        return x + self.fc2(F.gelu(self.fc1(F.layer_norm(x, (w,))), approximate="tanh"))


class Transformer(nn.Module):
    """The baseline task model: batch dict (DESIGN section 10) -> positions (B, V, 3)."""

    def __init__(self, size: dict):
        super().__init__()
        self.dims = d = TransformerDims.of(size)
        if d.fourier:
            gen = torch.Generator().manual_seed(0)
            self.register_buffer("freqs", FOURIER_SCALE * torch.randn(
                3, d.fourier, generator=gen))
        self.inp = nn.Linear(d.in_features, d.width)
        self.blocks = nn.ModuleList(Block(d) for _ in range(d.depth))
        self.out = nn.Linear(d.width, 3)
        nn.init.zeros_(self.out.bias)
        nn.init.normal_(self.out.weight, std=0.02)

    def features(self, sc: Scene) -> torch.Tensor:
        x0, x1, c0, c1 = sc.x0, sc.x1, sc.c0, sc.c1

        def height(p):
            return sc.height(p, keepdim=True)

        feats = [x0, x1, c0, c1, x1 - x0, c1 - c0, x1 - c1, height(x1), height(x0), height(c1),
                 height(c0), sc.along_up(x1 - x0, keepdim=True), sc.up, sc.floor]
        if self.dims.fourier:
            for p in (x0, x1, c0, c1):
                proj = (2 * math.pi) * (p @ self.freqs)
                feats += [proj.sin(), proj.cos()]
        return torch.cat(feats, -1)

    def forward(self, batch: dict) -> torch.Tensor:
        sc = Scene.of(batch)
        mask, same = batch["mask"], same_body(batch)
        x = self.inp(self.features(sc))
        for block in self.blocks:
            x = block(x, mask, same)
        pred = sc.x1 + self.out(F.layer_norm(x, (self.dims.width,)))
        return keep_real(pred, mask)


def transformer_params(size: dict) -> int:
    """Exact trainable parameters of Transformer(size)."""
    d = TransformerDims.of(size)
    w, r, lp = d.width, d.mlp_ratio, flops.linear_params
    block = (lp(w, w) + lp(w, 2 * d.kv_heads * d.head_dim) + lp(w, w) + d.heads
             + lp(w, r * w) + lp(r * w, w))
    return lp(d.in_features, w) + d.depth * block + lp(w, 3)


def transformer_flops(size: dict, tokens: int, batch_size: int) -> int:
    """Training FLOPs of one step on batch_size scenes of `tokens` tokens. The input layer
    reads the batch (no input gradient); the Fourier projections multiply the batch by a
    constant table (forward only: neither factor needs a gradient)."""
    d = TransformerDims.of(size)
    w, r, n, mm = d.width, d.mlp_ratio, tokens * batch_size, flops.matmul
    block = (mm(n, w, w) + mm(n, w, 2 * d.kv_heads * d.head_dim) + mm(n, w, w)
             + mm(n, w, r * w) + mm(n, r * w, w)
             + flops.attention(batch_size * d.heads, tokens, tokens, d.head_dim, d.head_dim))
    fourier = mm(4 * n, 3, d.fourier, passes=1)
    return mm(n, d.in_features, w, passes=2) + fourier + d.depth * block + mm(n, w, 3)


def _derive(size: dict) -> None:
    size.setdefault("heads", default_heads(size["width"]))


def _check(size: dict) -> None:
    if size["width"] % size["heads"]:
        raise UserError(f"transformer size: 'width' {size['width']} is not divisible by "
                        f"'heads' {size['heads']}")


FAMILY = Family(
    "transformer",
    size_keys={"width": None, "depth": None, "heads": None, "fourier": 0,
               "multi_query": True, "mlp_ratio": 2},
    positive=frozenset({"width", "depth", "heads", "mlp_ratio"}),
    ladder=({"width": 8, "depth": 1}, {"width": 16, "depth": 2}, {"width": 32, "depth": 2},
            {"width": 64, "depth": 3}, {"width": 128, "depth": 4},
            {"width": 192, "depth": 6}, {"width": 256, "depth": 8},
            {"width": 384, "depth": 10}, {"width": 512, "depth": 12},
            {"width": 768, "depth": 12}),
    model=Transformer, params=transformer_params, flops=transformer_flops,
    nominal=nominal.transformer,
    derive=_derive, check=_check, equivariant=False, group=None,
)
