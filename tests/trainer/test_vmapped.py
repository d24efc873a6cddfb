"""The stacked model and optimizer against their one-model originals: a stacked forward is
each member's own forward, and StackedAdamW's step (with per-member clipping) is
torch.optim.AdamW's step after clip_grad_norm_, member by member."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from equisweep.models import FAMILIES, build_model
from equisweep.trainer.vmapped import StackedAdamW, StackedModel
from tests.helpers.batches import make_batch
from tests.helpers.families import ALL


@pytest.mark.parametrize("family", ALL)
def test_stacked_forward_and_gradients_are_each_members_own(family):
    size = dict(FAMILIES[family].ladder[0])
    batch = make_batch(B=3, V=12, seed=1)
    stack = StackedModel(family, size, [0, 5], torch.device("cpu"), torch.float64)
    pred = stack(batch)
    pred.square().sum().backward()
    for k, seed in enumerate((0, 5)):
        torch.manual_seed(seed)
        alone = build_model(family, size).double()
        out = alone(batch)
        torch.testing.assert_close(pred[k], out, rtol=1e-12, atol=1e-12)
        out.square().sum().backward()
        grads = torch.cat([p.grad.reshape(-1) for p in alone.parameters()])
        torch.testing.assert_close(stack.flat.grad[k], grads, rtol=1e-10, atol=1e-12)
        # A member's state dict is the lone model's (buffers included).
        state = stack.member_state_dict(k)
        assert state.keys() == alone.state_dict().keys()


hparams = st.fixed_dictionaries({
    "lr": st.floats(1e-4, 1e-1), "beta1": st.floats(0.5, 0.99), "beta2": st.floats(0.9, 0.9999),
    "weight_decay": st.sampled_from([0.0, 0.01, 0.1]), "clip": st.floats(0.01, 10.0)})


@settings(max_examples=25, deadline=None)
@given(members=st.lists(hparams, min_size=1, max_size=4), seed=st.integers(0, 2**16),
       steps=st.integers(1, 4))
def test_stacked_adamw_is_torch_adamw_per_member(members, seed, steps):
    g = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (5,), (2, 2, 2)]
    k, n = len(members), sum(torch.Size(s).numel() for s in shapes)
    init = torch.randn(k, n, generator=g, dtype=torch.float64)
    grads = [torch.randn(k, n, generator=g, dtype=torch.float64) * 3 for _ in range(steps)]

    flat = init.clone().requires_grad_()
    opt = StackedAdamW(flat, [(m["beta1"], m["beta2"]) for m in members],
                       [m["weight_decay"] for m in members])
    clip = torch.tensor([m["clip"] for m in members], dtype=torch.float64)
    for grad in grads:
        flat.grad = grad.clone()
        norms = opt.clip(clip)
        opt.step([m["lr"] for m in members])

    for i, m in enumerate(members):
        params = [torch.nn.Parameter(t.reshape(s).clone()) for t, s in
                  zip(init[i].split([torch.Size(s).numel() for s in shapes]), shapes)]
        ref = torch.optim.AdamW(params, lr=m["lr"], betas=(m["beta1"], m["beta2"]),
                                weight_decay=m["weight_decay"])
        for grad in grads:
            for p, gp in zip(params, grad[i].split([p.numel() for p in params])):
                p.grad = gp.reshape(p.shape).clone()
            norm = torch.nn.utils.clip_grad_norm_(params, m["clip"])
            ref.step()
        torch.testing.assert_close(norms[i], norm, rtol=1e-12, atol=0)
        torch.testing.assert_close(flat.detach()[i],
                                   torch.cat([p.detach().reshape(-1) for p in params]),
                                   rtol=1e-10, atol=1e-12)
