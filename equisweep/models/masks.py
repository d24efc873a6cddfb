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


def attention_mask(key_ok: torch.Tensor, same: torch.Tensor | None,
                   body_bias: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive SDPA mask (B, 1, T*H, T) for queries laid out token-major, head-minor (the
    heads folded into the query axis of multi-query attention): -inf on padded keys, a
    learned per-head bias `body_bias` (H,) between tokens of the same body."""
    B, T = key_ok.shape
    H = body_bias.shape[0]
    pad = torch.zeros(B, 1, 1, T, dtype=dtype, device=key_ok.device)
    pad = pad.masked_fill(~key_ok[:, None, None, :], float("-inf"))
    if same is None:
        return pad.expand(B, T, H, T).reshape(B, 1, T * H, T)
    mask = torch.addcmul(pad, same.to(dtype)[:, :, None, :],
                         body_bias.to(dtype)[None, None, :, None])
    return mask.reshape(B, 1, T * H, T)
