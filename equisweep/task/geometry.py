"""Rotation helpers shared by the simulator, the dataset and the tests (numpy, vectorised)."""

from __future__ import annotations

import numpy as np


def _quat_outer_to_matrix() -> np.ndarray:
    # R(q) |q|^2 is quadratic in q: a fixed linear map of the outer product q q^T.
    k = np.zeros((4, 4, 3, 3))
    w, x, y, z = range(4)
    for (a, b), row, col, sign in [
        ((w, w), 0, 0, 1), ((x, x), 0, 0, 1), ((y, y), 0, 0, -1), ((z, z), 0, 0, -1),
        ((w, w), 1, 1, 1), ((x, x), 1, 1, -1), ((y, y), 1, 1, 1), ((z, z), 1, 1, -1),
        ((w, w), 2, 2, 1), ((x, x), 2, 2, -1), ((y, y), 2, 2, -1), ((z, z), 2, 2, 1),
        ((x, y), 0, 1, 2), ((w, z), 0, 1, -2), ((x, z), 0, 2, 2), ((w, y), 0, 2, 2),
        ((x, y), 1, 0, 2), ((w, z), 1, 0, 2), ((y, z), 1, 2, 2), ((w, x), 1, 2, -2),
        ((x, z), 2, 0, 2), ((w, y), 2, 0, -2), ((y, z), 2, 1, 2), ((w, x), 2, 1, 2),
    ]:
        k[a, b, row, col] += sign
    return k.reshape(16, 9)


_OUTER_TO_MATRIX = {np.dtype(np.float64): _quat_outer_to_matrix()}
_OUTER_TO_MATRIX[np.dtype(np.float32)] = _OUTER_TO_MATRIX[np.dtype(np.float64)].astype(np.float32)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) (w, x, y, z) quaternions, not necessarily unit -> (..., 3, 3) rotations."""
    k = _OUTER_TO_MATRIX.get(q.dtype)
    if k is None:
        k = _OUTER_TO_MATRIX[np.dtype(np.float64)].astype(q.dtype)
    outer = (q[..., :, None] * q[..., None, :]).reshape(*q.shape[:-1], 16)
    m = outer @ k
    m /= (q * q).sum(axis=-1, keepdims=True)
    return m.reshape(*q.shape[:-1], 3, 3)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (rotate by b, then by a), broadcasting."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)


def world_vertices(local: np.ndarray, body: np.ndarray, pos: np.ndarray,
                   rot: np.ndarray) -> np.ndarray:
    """Vertex positions from poses: `pos[..., body] + rot[..., body] @ local`.

    local (V, 3) body-frame vertices, body (V,) their body index, pos (..., B, 3) and
    rot (..., B, 3, 3) per-body poses (any leading frame axes) -> (..., V, 3).
    """
    return np.einsum("...vij,vj->...vi", rot[..., body, :, :], local) + pos[..., body, :]
