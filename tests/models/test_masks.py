"""models/masks.py: the written-out attention equals SDPA with the additive mask it
replaces (same-body bias, -inf on padded keys), multi-query and per head, values and
gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from equisweep.models.masks import body_attention


def sdpa_reference(q, k, v, key_ok, same, bias):
    B, T, H, d = q.shape
    mask = torch.zeros(B, 1, 1, T, dtype=q.dtype).masked_fill(
        ~key_ok[:, None, None, :], float("-inf")
    )
    mask = mask + same.to(q.dtype)[:, :, None, :] * bias[:, None]  # (B, T, H, T)
    if k.dim() == 3:
        out = F.scaled_dot_product_attention(
            q.reshape(B, 1, T * H, d),
            k[:, None],
            v[:, None],
            attn_mask=mask.reshape(B, 1, T * H, T),
        )
        return out.reshape(B, T, H, -1)
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask.transpose(1, 2)
    )
    return out.transpose(1, 2)


@settings(max_examples=25, deadline=None)
@given(
    B=st.integers(1, 3),
    T=st.integers(1, 9),
    H=st.integers(1, 4),
    d=st.integers(1, 6),
    shared=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_equals_sdpa_with_the_additive_mask(B, T, H, d, shared, seed):
    g = torch.Generator().manual_seed(seed)
    key_ok = torch.rand(B, T, generator=g) < 0.7
    key_ok[:, 0] = True  # a real scene has a real token
    body = torch.randint(0, 3, (B, T), generator=g)
    same = body[:, :, None] == body[:, None, :]
    kv = (B, T) if shared else (B, T, H)
    q = torch.randn(B, T, H, d, generator=g, dtype=torch.float64, requires_grad=True)
    k = torch.randn(*kv, d, generator=g, dtype=torch.float64, requires_grad=True)
    v = torch.randn(*kv, 5, generator=g, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(H, generator=g, dtype=torch.float64, requires_grad=True)
    out = body_attention(q, k, v, key_ok, same, bias)
    ref = sdpa_reference(q, k, v, key_ok, same, bias)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    w = torch.randn(out.shape, generator=g, dtype=torch.float64)
    grads = torch.autograd.grad((out * w).sum(), (q, k, v, bias))
    ref_grads = torch.autograd.grad((ref * w).sum(), (q, k, v, bias))
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_a_scene_without_real_tokens_stays_finite():
    q, k, v = torch.randn(1, 3, 2, 4), torch.randn(1, 3, 4), torch.randn(1, 3, 4)
    out = body_attention(q, k, v, torch.zeros(1, 3, dtype=torch.bool), None, torch.zeros(2))
    assert torch.isfinite(out).all()
