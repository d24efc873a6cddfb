"""Padding and body masks shared by the families (the batch contract, DESIGN section 10).

Every family must give the same prediction on a scene's real tokens whatever the padded
tokens hold (padding never changes real predictions) and must not care how bodies are
numbered; the helpers here are where that is done once.
"""

from __future__ import annotations

import torch

POINT_KEYS = ("x0", "x1", "c0", "c1")


def real_points(batch: dict) -> dict[str, torch.Tensor]:
    """x0, x1, c0, c1 with padded tokens set to zero: whatever padding holds (even NaN) never
    reaches a computation. torch.where, not a product: 0 * NaN is NaN."""
    keep = batch["mask"][..., None]
    return {k: torch.where(keep, batch[k], 0.0) for k in POINT_KEYS}


def same_body(batch: dict) -> torch.Tensor:
    """(B, V, V) bool: token pairs of one body. Compares labels only, so any relabelling of
    the bodies gives the same mask."""
    body = batch["body"]
    return body[:, :, None] == body[:, None, :]


def pair_mask(mask: torch.Tensor) -> torch.Tensor:
    """(B, V, V) bool: pairs of two distinct real tokens of a scene (the edges of the fully
    connected graph within a scene)."""
    eye = torch.eye(mask.shape[-1], dtype=torch.bool, device=mask.device)
    return mask[:, :, None] & mask[:, None, :] & ~eye


def keep_real(pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Predictions with padded tokens set to zero (the contract's padding value)."""
    return torch.where(mask[..., None], pred, 0.0)


def score_bias(key_ok: torch.Tensor, same: torch.Tensor | None, body_bias: torch.Tensor,
               dtype: torch.dtype) -> torch.Tensor:
    """Additive score term (B, T, H, T), queries token-major, head-minor: a learned per-head
    bias `body_bias` (H,) between tokens of the same body, and the dtype's lowest finite
    value on padded keys (`key_ok` False), in one pass. Lowest finite, not -inf: exp
    underflows to exactly 0 beside any real key, and a scene without a real token gets
    finite (unused) rows rather than NaN."""
    B, T = key_ok.shape
    H = body_bias.shape[0]
    pad = torch.zeros(B, 1, 1, T, dtype=dtype, device=key_ok.device)
    pad = pad.masked_fill(~key_ok[:, None, None, :], torch.finfo(dtype).min)
    if same is None:
        return pad.expand(B, T, H, T)
    return torch.addcmul(pad, same.to(dtype)[:, :, None, :],
                         body_bias.to(dtype)[None, None, :, None])


def body_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_ok: torch.Tensor,
                   same: torch.Tensor | None, body_bias: torch.Tensor) -> torch.Tensor:
    """Softmax attention with the learned same-body bias and padded keys left out
    (`score_bias`). q (B, T, H, d) token-major; k (B, T, d) and v (B, T, dv) one shared
    key/value head (multi-query: the heads fold into the query axis, one matmul for all),
    or k (B, T, H, d) and v (B, T, H, dv) per head. Returns (B, T, H, dv); scale 1/sqrt(d),
    SDPA's default.

    Written out rather than through scaled_dot_product_attention: the bias depends on a
    parameter, which SDPA takes only as a float mask, and on CPU that sends training (and
    every vmapped stack) to its math kernel, which checks the mask for fully masked rows on
    every call. Here the score term is added inside the QK^T matmul (baddbmm). The matmuls
    are the math kernel's (QK^T, AV), so FLOP counts keep their meaning.
    """
    B, T, H, d = q.shape
    bias = score_bias(key_ok, same, body_bias, q.dtype)
    if k.dim() == 3:  # (B, T*H, d) @ (B, d, T): every head against the one key head
        scores = torch.baddbmm(bias.reshape(B, T * H, T), q.reshape(B, T * H, d),
                               k.transpose(1, 2), alpha=d ** -0.5)
        return torch.bmm(torch.softmax(scores, dim=-1), v).view(B, T, H, -1)
    scores = torch.matmul(q.transpose(1, 2), k.permute(0, 2, 3, 1)) * d ** -0.5
    weights = torch.softmax(scores + bias.transpose(1, 2), dim=-1)  # (B, H, T, T)
    return torch.matmul(weights, v.transpose(1, 2)).transpose(1, 2)
