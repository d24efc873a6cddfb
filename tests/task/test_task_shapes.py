from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial import ConvexHull

from equisweep.errors import UserError
from equisweep.task.shapes import make_mesh, solid_centroid, vertex_count

KINDS = ["hull", "box", "tetrahedron", "icosahedron", "prism"]


@settings(max_examples=40, deadline=None)
@given(kind=st.sampled_from(KINDS), k=st.integers(4, 64), seed=st.integers(0, 2**32 - 1),
       radius=st.floats(0.05, 2.0))
def test_meshes_are_convex_centred_and_sized(kind, k, seed, radius):
    v = make_mesh(kind, np.random.default_rng(seed), radius, k)
    assert v.shape == (vertex_count(kind, k), 3)
    # Every vertex is a corner of the hull: tokens are exactly what collides.
    assert len(ConvexHull(v).vertices) == len(v)
    np.testing.assert_allclose(solid_centroid(v), 0.0, atol=1e-9 * radius)
    assert np.isclose(np.linalg.norm(v, axis=1).max(), radius)


def test_vertex_counts():
    assert vertex_count("hull", 17) == 17
    assert vertex_count("prism", 17) == 16 and vertex_count("prism", 4) == 6
    assert [vertex_count(k, 30) for k in ("box", "tetrahedron", "icosahedron")] == [8, 4, 12]


def test_fixed_solids_are_regular():
    rng = np.random.default_rng(0)
    ico = make_mesh("icosahedron", rng, 1.0, 12)
    tet = make_mesh("tetrahedron", rng, 1.0, 4)
    for v, neighbours in ((ico, 5), (tet, 3)):
        d = np.linalg.norm(v[:, None] - v[None], axis=-1)
        edge = np.sort(d, axis=1)[:, 1]
        assert np.allclose(edge, edge[0])
        assert np.all(np.isclose(d, edge[0]).sum(axis=1) == neighbours)


def test_centroid_of_a_lopsided_solid():
    # A square pyramid: the solid's centroid is at a quarter of the height, not at the mean
    # of the five corners (which sits at a fifth).
    v = np.array([[1, 1, 0], [1, -1, 0], [-1, 1, 0], [-1, -1, 0], [0, 0, 4.0]])
    np.testing.assert_allclose(solid_centroid(v), [0, 0, 1.0], atol=1e-12)


def test_unknown_kind():
    with pytest.raises(UserError, match="sphere"):
        make_mesh("sphere", np.random.default_rng(0), 1.0, 12)
