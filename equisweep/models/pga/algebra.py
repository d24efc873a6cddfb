"""The projective geometric algebra G(3,0,1), derived from its basis blades.

A multivector is a tensor whose last axis holds 16 coefficients in the blade order
[1, e0, e1, e2, e3, e01, e02, e03, e12, e13, e23, e012, e013, e023, e123, e0123]
with e0^2 = 0 and e1^2 = e2^2 = e3^2 = 1. Every product table is computed here from that
definition at import; `tables(device, dtype)` hands out cached tensor copies.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
import torch

BLADES: tuple[tuple[int, ...], ...] = (
    (), (0,), (1,), (2,), (3,),
    (0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3),
    (0, 1, 2), (0, 1, 3), (0, 2, 3), (1, 2, 3),
    (0, 1, 2, 3),
)
NAMES: tuple[str, ...] = tuple("1" if not b else "e" + "".join(map(str, b)) for b in BLADES)
INDEX: dict[tuple[int, ...], int] = {b: i for i, b in enumerate(BLADES)}
GRADE: tuple[int, ...] = tuple(len(b) for b in BLADES)
METRIC = (0.0, 1.0, 1.0, 1.0)
E0, E123, E0123 = INDEX[(0,)], INDEX[(1, 2, 3)], INDEX[(0, 1, 2, 3)]


def blade_product(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[float, tuple[int, ...]]:
    """e_a e_b = sign * e_c for sorted generator tuples a, b (sign 0 when e0 meets e0)."""
    # Sorting the concatenation swaps each pair (i in a, j in b) with i > j once.
    swaps = sum(1 for i in a for j in b if i > j)
    sign = -1.0 if swaps % 2 else 1.0
    for k in set(a) & set(b):
        sign *= METRIC[k]
    return sign, tuple(sorted(set(a) ^ set(b)))


def _product_table(outer: bool) -> np.ndarray:
    table = np.zeros((16, 16, 16))
    for (i, a), (j, b) in itertools.product(enumerate(BLADES), repeat=2):
        if outer and set(a) & set(b):
            continue
        sign, c = blade_product(a, b)
        table[i, j, INDEX[c]] = sign
    return table


def _dual_matrix() -> np.ndarray:
    """Right complement: e_A ^ dual(e_A) = e0123 for every blade (a signed permutation)."""
    full = BLADES[E0123]
    dual = np.zeros((16, 16))
    for i, a in enumerate(BLADES):
        comp = tuple(k for k in full if k not in a)
        sign, c = blade_product(a, comp)  # disjoint blades: no metric factor
        assert c == full
        dual[INDEX[comp], i] = sign  # sign * sign = 1, so e_A ^ (sign e_comp) = e0123
    return dual


def _bilinear(table: np.ndarray, left: np.ndarray, right: np.ndarray,
              out: np.ndarray) -> np.ndarray:
    """Table of x, y -> out @ table(left @ x, right @ y) (all matrices act on columns)."""
    return np.einsum("pi,qj,pqr,kr->ijk", left, right, table, out)


GEOMETRIC = _product_table(outer=False)
OUTER = _product_table(outer=True)
REVERSE = np.array([(-1.0) ** (g * (g - 1) // 2) for g in GRADE])
INVOLUTE = np.array([(-1.0) ** g for g in GRADE])
DUAL = _dual_matrix()
UNDUAL = DUAL.T.copy()  # a signed permutation is orthogonal
JOIN = _bilinear(OUTER, DUAL, DUAL, UNDUAL)
# <~x y>_0 has weight <~e_A e_A>_0 on component A: 1 on blades without e0, 0 on the rest.
INNER = np.array([REVERSE[i] * GEOMETRIC[i, i, 0] for i in range(16)])
INNER_INDEX = tuple(int(i) for i in np.flatnonzero(INNER))


def _linear_basis() -> np.ndarray:
    """The 9 Pin(3,0,1)-equivariant linear maps, each Frobenius-normalised, as (9, out, in):
    the five grade projections and x -> e0 <x>_k for k = 0..3."""
    maps = []
    for k in range(5):
        maps.append(np.diag([1.0 if g == k else 0.0 for g in GRADE]))
    for k in range(4):
        proj = np.diag([1.0 if g == k else 0.0 for g in GRADE])
        e0_left = GEOMETRIC[E0].T  # (out, in): e0 * x
        maps.append(e0_left @ proj)
    basis = np.stack(maps)
    return basis / np.linalg.norm(basis, axis=(1, 2), keepdims=True)


LINEAR_BASIS = _linear_basis()


@dataclass(frozen=True)
class Tables:
    """Tensor copies of the algebra on one device and dtype."""

    geometric: torch.Tensor  # (16, 16, 16): (x y)_k = sum_ij g_ijk x_i y_j
    outer: torch.Tensor
    join: torch.Tensor
    reverse: torch.Tensor  # (16,) signs
    involute: torch.Tensor
    dual: torch.Tensor  # (16, 16) acting on column vectors
    undual: torch.Tensor
    inner: torch.Tensor  # (16,) weights of the invariant inner product
    linear_basis: torch.Tensor  # (9, 16, 16)


@functools.cache
def tables(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> Tables:
    def t(a: np.ndarray) -> torch.Tensor:
        return torch.tensor(a, device=device, dtype=dtype)

    return Tables(t(GEOMETRIC), t(OUTER), t(JOIN), t(REVERSE), t(INVOLUTE), t(DUAL), t(UNDUAL),
                  t(INNER), t(LINEAR_BASIS))


def _tab(x: torch.Tensor) -> Tables:
    return tables(x.device, x.dtype)


def _bil(table: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.einsum("...i,...j,ijk->...k", x, y, table)


def geometric_product(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _bil(_tab(x).geometric, x, y)


def outer_product(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return _bil(_tab(x).outer, x, y)


def join(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Regressive product undual(dual(x) ^ dual(y)); equivariant up to det(g) (see group)."""
    return _bil(_tab(x).join, x, y)


def reverse(x: torch.Tensor) -> torch.Tensor:
    return x * _tab(x).reverse


def grade_involution(x: torch.Tensor) -> torch.Tensor:
    return x * _tab(x).involute


def dual(x: torch.Tensor) -> torch.Tensor:
    return x @ _tab(x).dual.T


def undual(x: torch.Tensor) -> torch.Tensor:
    return x @ _tab(x).undual.T


def inner_product(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The invariant <~x y>_0 (shape of x without the last axis)."""
    return (x * y * _tab(x).inner).sum(-1)


def grade_projection(x: torch.Tensor, k: int) -> torch.Tensor:
    mask = torch.tensor([g == k for g in GRADE], device=x.device)
    return x * mask.to(x.dtype)
