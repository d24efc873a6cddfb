"""Geometric objects <-> multivectors (plane-based convention of GATr).

point p       -> e123 - p_x e023 + p_y e013 - p_z e012   (a trivector)
plane n, q    -> n_1 e1 + n_2 e2 + n_3 e3 - (n . q) e0   (normal n through point q)
translation t -> 1 - (t_1 e01 + t_2 e02 + t_3 e03) / 2   (the versor that moves by t)
"""

from __future__ import annotations

import torch

from equisweep.models.pga.algebra import E0123, E123, INDEX

_POINT = (INDEX[(0, 2, 3)], INDEX[(0, 1, 3)], INDEX[(0, 1, 2)])
_POINT_SIGN = (-1.0, 1.0, -1.0)
_VECTOR = (INDEX[(1,)], INDEX[(2,)], INDEX[(3,)])
_IDEAL = (INDEX[(0, 1)], INDEX[(0, 2)], INDEX[(0, 3)])
_E0 = INDEX[(0,)]


def _empty(like: torch.Tensor) -> torch.Tensor:
    return like.new_zeros(*like.shape[:-1], 16)


def _put(mv: torch.Tensor, index, values: torch.Tensor, signs=(1.0, 1.0, 1.0)) -> torch.Tensor:
    for k, (i, s) in enumerate(zip(index, signs)):
        mv[..., i] = s * values[..., k]
    return mv


def embed_scalar(s: torch.Tensor) -> torch.Tensor:
    mv = s.new_zeros(*s.shape, 16)
    mv[..., 0] = s
    return mv


def extract_scalar(mv: torch.Tensor) -> torch.Tensor:
    return mv[..., 0]


def embed_pseudoscalar(s: torch.Tensor) -> torch.Tensor:
    mv = s.new_zeros(*s.shape, 16)
    mv[..., E0123] = s
    return mv


def extract_pseudoscalar(mv: torch.Tensor) -> torch.Tensor:
    return mv[..., E0123]


def embed_point(p: torch.Tensor) -> torch.Tensor:
    mv = _put(_empty(p), _POINT, p, _POINT_SIGN)
    mv[..., E123] = 1.0
    return mv


def extract_point(mv: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Euclidean coordinates of a (homogeneous) point trivector: divide by its e123 part."""
    w = mv[..., E123:E123 + 1]
    coords = torch.stack([s * mv[..., i] for i, s in zip(_POINT, _POINT_SIGN)], -1)
    return coords / (w + eps) if eps else coords / w


def embed_plane(normal: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
    mv = _put(_empty(normal), _VECTOR, normal)
    mv[..., _E0] = -(normal * point).sum(-1)
    return mv


def extract_plane_normal(mv: torch.Tensor) -> torch.Tensor:
    return torch.stack([mv[..., i] for i in _VECTOR], -1)


def embed_translation(t: torch.Tensor) -> torch.Tensor:
    """The translator by t; also how GATr embeds directions (it ignores translations)."""
    mv = _put(_empty(t), _IDEAL, -0.5 * t)
    mv[..., 0] = 1.0
    return mv


def extract_translation(mv: torch.Tensor) -> torch.Tensor:
    """Inverse of embed_translation for a translator (scale by its scalar part)."""
    return -2.0 * torch.stack([mv[..., i] for i in _IDEAL], -1) / mv[..., :1]
