"""The algebra G(3,0,1): products, involutions, dual/join, embeddings and the group action."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from equisweep.models import pga
from equisweep.models.pga import algebra
from tests.helpers.equivariance import e3_elements

F64 = torch.float64


def mv(n, seed):
    return torch.randn(n, 16, generator=torch.Generator().manual_seed(seed), dtype=F64)


def basis(i):
    x = torch.zeros(16, dtype=F64)
    x[i] = 1.0
    return x


def test_blade_order_and_grades():
    assert pga.NAMES == ("1", "e0", "e1", "e2", "e3", "e01", "e02", "e03", "e12", "e13", "e23",
                         "e012", "e013", "e023", "e123", "e0123")
    assert pga.GRADE == (0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4)


def test_metric():
    squares = [pga.geometric_product(basis(i), basis(i)) for i in range(1, 5)]
    assert torch.equal(squares[0], torch.zeros(16, dtype=F64))  # e0^2 = 0
    for sq in squares[1:]:
        assert torch.equal(sq, basis(0))  # e_i^2 = 1
    # distinct generators anticommute; e1 e2 = e12
    e1, e2 = basis(2), basis(3)
    assert torch.equal(pga.geometric_product(e1, e2), basis(pga.INDEX[(1, 2)]))
    assert torch.equal(pga.geometric_product(e2, e1), -basis(pga.INDEX[(1, 2)]))
    # the Euclidean pseudoscalar squares to -1
    e123 = basis(pga.INDEX[(1, 2, 3)])
    assert torch.equal(pga.geometric_product(e123, e123), -basis(0))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_geometric_product_is_associative_and_bilinear(seed):
    x, y, z = mv(3, seed)
    gp = pga.geometric_product
    assert torch.allclose(gp(gp(x, y), z), gp(x, gp(y, z)), atol=1e-10)
    assert torch.allclose(gp(2 * x + y, z), 2 * gp(x, z) + gp(y, z), atol=1e-10)


def test_outer_product_is_associative_graded_and_alternating():
    x, y, z = mv(3, 5)
    op = pga.outer_product
    assert torch.allclose(op(op(x, y), z), op(x, op(y, z)), atol=1e-10)
    v = pga.grade_projection(x, 1)
    assert torch.allclose(op(v, v), torch.zeros(16, dtype=F64), atol=1e-12)
    a, b = pga.grade_projection(x, 1), pga.grade_projection(y, 2)
    assert torch.allclose(op(a, b), pga.grade_projection(op(a, b), 3))


def test_reverse_and_involution():
    x, y = mv(2, 7)
    gp = pga.geometric_product
    assert torch.allclose(pga.reverse(gp(x, y)), gp(pga.reverse(y), pga.reverse(x)), atol=1e-10)
    inv = pga.grade_involution
    assert torch.allclose(inv(gp(x, y)), gp(inv(x), inv(y)), atol=1e-10)


def test_dual_and_join_identities():
    x, y = mv(2, 11)
    pseudo = basis(15)
    assert torch.allclose(pga.undual(pga.dual(x)), x)
    for i, blade in enumerate(algebra.BLADES):  # e_A ^ dual(e_A) = e0123
        assert torch.equal(pga.outer_product(basis(i), pga.dual(basis(i))), pseudo), blade
    assert torch.allclose(pga.join(x, pseudo), x)  # e0123 is the unit of the join
    assert torch.allclose(pga.join(pseudo, x), x)
    # join of three points is their plane; it contains each point and equals embed_plane
    g = torch.Generator().manual_seed(3)
    a, b, c = torch.randn(3, 3, generator=g, dtype=F64)
    pa, pb, pc = (pga.embed_point(p) for p in (a, b, c))
    plane = pga.join(pga.join(pa, pb), pc)
    assert torch.allclose(plane, pga.grade_projection(plane, 1))
    for p in (pa, pb, pc):
        assert abs(float(pga.join(plane, p)[0])) < 1e-10
    normal = torch.linalg.cross(b - a, c - a)
    expected = pga.embed_plane(normal, a)
    ratio = plane[2:5] / expected[2:5]
    assert torch.allclose(plane, ratio[0] * expected, atol=1e-10)
    # the line through two points contains both (join with either is zero)
    line = pga.join(pa, pb)
    assert torch.allclose(pga.join(line, pa), torch.zeros(16, dtype=F64), atol=1e-10)


def test_inner_product_is_the_scalar_part_of_reverse_product():
    x, y = mv(2, 13)
    expected = pga.geometric_product(pga.reverse(x), y)[..., 0]
    assert torch.allclose(pga.inner_product(x, y), expected)
    assert pga.INNER_INDEX == (0, 2, 3, 4, 8, 9, 10, 14)


def test_tables_are_cached_per_device_and_dtype():
    assert pga.tables("cpu", torch.float32) is pga.tables("cpu", torch.float32)
    t64 = pga.tables("cpu", F64)
    assert t64.geometric.dtype == F64 and t64 is not pga.tables("cpu", torch.float32)
    assert np.count_nonzero(algebra.GEOMETRIC) == 192  # 256 blade pairs minus 64 e0*e0


def test_embedding_round_trips():
    g = torch.Generator().manual_seed(17)
    p, n, t = torch.randn(3, 5, 3, generator=g, dtype=F64)
    s = torch.randn(5, generator=g, dtype=F64)
    assert torch.allclose(pga.extract_point(pga.embed_point(p)), p)
    assert torch.allclose(pga.extract_point(3.0 * pga.embed_point(p)), p)  # homogeneous
    assert torch.allclose(pga.extract_plane_normal(pga.embed_plane(n, p)), n)
    assert torch.allclose(pga.extract_translation(pga.embed_translation(t)), t)
    assert torch.equal(pga.extract_scalar(pga.embed_scalar(s)), s)
    assert torch.equal(pga.extract_pseudoscalar(pga.embed_pseudoscalar(s)), s)
    # the plane passes through its support point: plane ^ point = 0
    plane, point = pga.embed_plane(n, p), pga.embed_point(p)
    assert torch.allclose(pga.outer_product(plane, point), torch.zeros(5, 16, dtype=F64),
                          atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_versor_from_rt_matches_e3_action(seed):
    R, t = e3_elements(8, seed=seed)
    u, odd = pga.versor_from_rt(R, t)
    assert torch.equal(odd, torch.linalg.det(R) < 0)
    g = torch.Generator().manual_seed(seed)
    p, n = torch.randn(2, 8, 3, generator=g, dtype=F64)
    n = torch.nn.functional.normalize(n, dim=-1)
    Rp = torch.einsum("bij,bj->bi", R, p) + t
    Rn = torch.einsum("bij,bj->bi", R, n)
    moved = pga.act(u, odd, pga.embed_point(p))
    assert torch.allclose(pga.extract_point(moved), Rp, atol=1e-12)
    # the homogeneous sign of a moved point is det R (why points are pseudo-multivectors)
    assert torch.allclose(moved[:, 14], torch.linalg.det(R))
    assert torch.allclose(pga.act(u, odd, pga.embed_plane(n, p)), pga.embed_plane(Rn, Rp),
                          atol=1e-12)
    assert torch.allclose(pga.act(u, odd, pga.embed_translation(n)), pga.embed_translation(Rn),
                          atol=1e-12)
    R2, t2 = pga.rt_from_versor(u, odd)
    assert torch.allclose(R2, R, atol=1e-12) and torch.allclose(t2, t, atol=1e-12)


def test_action_is_a_homomorphism_and_products_are_equivariant():
    u, ou = pga.random_pin(16, torch.Generator().manual_seed(0))
    v, ov = pga.random_pin(16, torch.Generator().manual_seed(1))
    assert ou.any() and (~ou).any()
    x, y = mv(16, 2), mv(16, 3)
    uv = pga.geometric_product(u, v)
    assert torch.allclose(pga.act(uv, ou ^ ov, x), pga.act(u, ou, pga.act(v, ov, x)), atol=1e-9)
    g = lambda z: pga.act(u, ou, z)
    assert torch.allclose(g(pga.geometric_product(x, y)), pga.geometric_product(g(x), g(y)),
                          atol=1e-9)
    assert torch.allclose(g(pga.outer_product(x, y)), pga.outer_product(g(x), g(y)), atol=1e-9)
    assert torch.allclose(pga.inner_product(g(x), g(y)), pga.inner_product(x, y), atol=1e-9)
    det = pga.det_sign(ou)[:, None]
    assert torch.allclose(det * g(pga.join(x, y)), pga.join(g(x), g(y)), atol=1e-9)
    # the join alone is NOT equivariant under reflections (the sign is real)
    assert not torch.allclose(g(pga.join(x, y)), pga.join(g(x), g(y)), atol=1e-3)
    for m in algebra.LINEAR_BASIS:
        mat = torch.tensor(m)
        assert torch.allclose(g(x @ mat.T), g(x) @ mat.T, atol=1e-9)


def test_linear_basis_is_normalised_and_complete():
    b = torch.tensor(algebra.LINEAR_BASIS)
    assert b.shape == (9, 16, 16)
    assert torch.allclose(b.flatten(1).norm(dim=1), torch.ones(9, dtype=F64))
    assert torch.linalg.matrix_rank(b.flatten(1)) == 9
