"""Rotation helpers shared by the simulator, the dataset and the tests (numpy, vectorised)."""

from __future__ import annotations

import numpy as np


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) (w, x, y, z) quaternions, not necessarily unit -> (..., 3, 3) rotations."""
    w, x, y, z = np.moveaxis(q, -1, 0)
    s = 2.0 / (w * w + x * x + y * y + z * z)
    m = np.stack([
        1 - s * (y * y + z * z), s * (x * y - w * z), s * (x * z + w * y),
        s * (x * y + w * z), 1 - s * (x * x + z * z), s * (y * z - w * x),
        s * (x * z - w * y), s * (y * z + w * x), 1 - s * (x * x + y * y),
    ], axis=-1)
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
