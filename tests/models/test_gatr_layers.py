"""Every GATr layer commutes with random Pin(3,0,1) elements acting on token states:
rho_u on the rho-kind channels, det(u) rho_u on the det kind, nothing on scalars."""

from __future__ import annotations

import pytest
import torch

from equisweep.models import pga
from equisweep.models.gatr.attention import GeometricAttention
from equisweep.models.gatr.bilinear import GeometricMLP
from equisweep.models.gatr.linear import EquiLinear, Layout
from equisweep.models.gatr.net import GATrBlock, GATrDims
from equisweep.models.gatr.nonlinearity import equi_layer_norm, gated_gelu
from tests.helpers.equivariance import TOL, equivariance_error, pin_elements

B, T = 4, 7


def act_state(h, layout, u, odd, pseudo_sign=True):
    e, s, o = layout.split(h)
    uu, oo = u[:, None, None, :].to(h.dtype), odd[:, None, None]
    e = pga.act(uu, oo, e)
    det = pga.det_sign(odd, h.dtype)[:, None, None, None] if pseudo_sign else 1.0
    o = det * pga.act(uu, oo, o)
    return layout.join(e, s, o)


@pytest.fixture(params=[torch.float64, torch.float32], ids=["f64", "f32"])
def dtype(request):
    return request.param


L = Layout(3, 2, 5)


def run_check(fn, lin, lout, dtype, pseudo_sign=True, seed=0, **kw):
    gen = torch.Generator().manual_seed(seed + 100)
    h = torch.randn(B, T, lin.width, generator=gen, dtype=torch.float64).to(dtype)
    u, odd = pin_elements(B, seed)
    u = u.to(dtype)
    return equivariance_error(lambda x: fn(x, **kw), h,
                              lambda x: act_state(x, lin, u, odd, pseudo_sign),
                              lambda y: act_state(y, lout, u, odd, pseudo_sign))


def test_equilinear(dtype):
    torch.manual_seed(0)
    lout = Layout(4, 3, 6)
    layer = EquiLinear(L, lout).to(dtype)
    with torch.no_grad():
        layer.bias.normal_()
    assert run_check(layer, L, lout, dtype) < TOL[dtype]


def test_equilinear_fused_and_split_paths_agree():
    """The column-selecting (fused matrix) path and the default split path are one map."""
    torch.manual_seed(4)
    lout = Layout(2, 3, 4)
    layer = EquiLinear(L, lout).double()
    with torch.no_grad():
        layer.bias.normal_()
    h = torch.randn(B, T, L.width, dtype=torch.float64)
    a_e, _, a_o = layer.matrices(h)
    cols_e, cols_o = torch.arange(a_e.shape[1]), torch.arange(a_o.shape[1])
    assert torch.allclose(layer(h, cols_e, cols_o), layer(h), atol=1e-12)
    some = torch.tensor([0, 5, 17, 33])
    assert torch.allclose(layer(h, some, cols_o)[..., :4], layer(h)[..., some], atol=1e-12)


def test_equilinear_uses_all_nine_basis_maps():
    """Each basis map is reachable: zeroing one coefficient changes the output."""
    torch.manual_seed(0)
    layer = EquiLinear(Layout(1, 0, 0), Layout(1, 0, 0), bias=False).double()
    x = torch.randn(5, 16, dtype=torch.float64)
    base = layer(x)
    for m in range(9):
        with torch.no_grad():
            saved = layer.w_e[0, 0, m].item()
            layer.w_e[0, 0, m] = 0.0
            assert not torch.allclose(layer(x), base)
            layer.w_e[0, 0, m] = saved


def test_layer_norm(dtype):
    assert run_check(lambda h: equi_layer_norm(h, L), L, L, dtype) < TOL[dtype]


def test_gated_gelu(dtype):
    def fn(h):
        e, s, o = L.split(h)
        ge, go = gated_gelu(e, o)
        return L.join(ge, s, go)

    assert run_check(fn, L, L, dtype) < TOL[dtype]


def test_geometric_mlp(dtype):
    torch.manual_seed(1)
    mlp = GeometricMLP(L, m=2, out_gain=1.0).to(dtype)
    assert run_check(mlp, L, L, dtype) < TOL[dtype]


def test_geometric_mlp_needs_the_kinds():
    """Acting on det-kind channels with plain rho_u breaks it: the check can fail."""
    torch.manual_seed(1)
    mlp = GeometricMLP(L, m=2, out_gain=1.0).double()
    assert run_check(mlp, L, L, torch.float64, pseudo_sign=False) > 1e-3


def _key_ok():
    ok = torch.ones(B, T, dtype=torch.bool)
    ok[1, 5:] = False
    return ok


def test_attention(dtype):
    torch.manual_seed(2)
    attn = GeometricAttention(L, heads=3, hidden_mv=3, hidden_s=4, out_gain=1.0).to(dtype)
    with torch.no_grad():
        attn.log_dist.normal_()
        attn.body_bias.normal_()
    body = torch.randint(0, 2, (B, T))
    same = body[:, :, None] == body[:, None, :]
    err = run_check(attn, L, L, dtype, key_ok=_key_ok(), same_body=same)
    assert err < TOL[dtype]


def test_block(dtype):
    torch.manual_seed(3)
    dims = GATrDims(width=5, depth=2, scalars=5, heads=2)
    block = GATrBlock(dims).to(dtype)
    lay = dims.layout
    same = torch.eye(T, dtype=torch.bool).expand(B, T, T)
    assert run_check(block, lay, lay, dtype, key_ok=_key_ok(), same=same) < TOL[dtype]
