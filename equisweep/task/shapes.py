"""Procedural convex meshes: vertices in the body frame, centred on the solid's centroid.

Every returned vertex is an extreme point of the convex hull, so the vertices a model sees as
tokens are exactly the corners MuJoCo collides with. Vertex counts:

  hull         exactly K random points on a random ellipsoid (K = `vertices`)
  box          8 (random half-extents)
  tetrahedron  4 (regular)
  icosahedron  12 (regular)
  prism        2n, n = max(3, K // 2): a right prism over a regular n-gon
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import ConvexHull

from equisweep.errors import UserError
from equisweep.task.config import SHAPE_KINDS

_PHI = (1.0 + 5.0**0.5) / 2.0


def vertex_count(kind: str, vertices: int) -> int:
    """How many vertices a body of `kind` gets under the `vertices` setting."""
    if kind == "hull":
        return vertices
    if kind == "prism":
        return 2 * max(3, vertices // 2)
    return {"box": 8, "tetrahedron": 4, "icosahedron": 12}[_known(kind)]


def make_mesh(kind: str, rng: np.random.Generator, radius: float, vertices: int) -> np.ndarray:
    """(V, 3) float64 vertices of one body with circumradius about `radius`, centroid at 0."""
    if kind == "hull":
        v, hull = _hull(rng, vertices)
        v = v - solid_centroid(v, hull)
    elif kind == "box":
        v = _box(rng)
    elif kind == "tetrahedron":
        v = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float)
    elif kind == "icosahedron":
        v = _icosahedron()
    elif kind == "prism":
        v = _prism(rng, max(3, vertices // 2))
    else:
        _known(kind)
    # The fixed solids are built point-symmetric or regular: their centroid is already 0.
    return v * (radius / np.linalg.norm(v, axis=1).max())


def solid_centroid(v: np.ndarray, hull: ConvexHull | None = None) -> np.ndarray:
    """Centre of mass of the uniform solid bounded by the convex hull of `v`."""
    hull = ConvexHull(v) if hull is None else hull
    inner = v[hull.vertices].mean(axis=0)
    tri = v[hull.simplices]  # each facet + the inner point is a tetrahedron of the solid
    vol = np.abs(np.einsum("ij,ij->i", tri[:, 0] - inner, np.cross(tri[:, 1] - inner,
                                                                  tri[:, 2] - inner))) / 6.0
    centres = (tri.sum(axis=1) + inner) / 4.0
    return (centres * vol[:, None]).sum(axis=0) / vol.sum()


def _known(kind: str) -> str:
    if kind not in SHAPE_KINDS:
        raise UserError(f"task.shapes: unknown shape kind {kind!r}")
    return kind


def _hull(rng: np.random.Generator, k: int) -> np.ndarray:
    # Points on a strictly convex surface are all extreme; retry only against near-duplicates
    # that qhull would merge.
    for _ in range(100):
        p = rng.normal(size=(k, 3))
        p /= np.linalg.norm(p, axis=1, keepdims=True)
        p *= rng.uniform(0.6, 1.0, size=3)
        hull = ConvexHull(p)
        if len(hull.vertices) == k:
            return p, hull
    raise RuntimeError(f"could not draw a convex hull with {k} extreme points")


def _box(rng: np.random.Generator) -> np.ndarray:
    half = rng.uniform(0.4, 1.0, size=3)
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    return signs * half


def _icosahedron() -> np.ndarray:
    v = []
    for a in (-1.0, 1.0):
        for b in (-_PHI, _PHI):
            v += [[0.0, a, b], [a, b, 0.0], [b, 0.0, a]]
    return np.array(v)


def _prism(rng: np.random.Generator, n: int) -> np.ndarray:
    angle = 2.0 * np.pi * np.arange(n) / n
    ring = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    half_height = rng.uniform(0.3, 1.0)
    top = np.concatenate([ring, np.full((n, 1), half_height)], axis=1)
    bottom = top * np.array([1.0, 1.0, -1.0])
    return np.concatenate([bottom, top])
