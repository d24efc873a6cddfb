"""Pin(3,0,1) acting on multivectors, and its link to E(3) elements (R, t).

A versor u (a product of vectors) acts by the twisted sandwich
rho_u(x) = u x u^-1 (u even) or u x^ u^-1 (u odd, x^ the grade involution).
`versor_from_rt(R, t)` gives the u with rho_u(embed_point(p)) ~ embed_point(R p + t)
(equal up to the homogeneous sign det R), rho_u(plane) = the moved plane and
rho_u(translation(v)) = translation(R v), for every R in O(3).
"""

from __future__ import annotations

import torch

from equisweep.models.pga.algebra import E123, geometric_product, grade_involution, reverse
from equisweep.models.pga.embed import embed_translation

_VECTOR = slice(1, 5)  # e0, e1, e2, e3


def versor_inverse(u: torch.Tensor) -> torch.Tensor:
    """u^-1 = ~u / (u ~u); for a versor u ~u is a (Euclidean) scalar."""
    ur = reverse(u)
    norm = geometric_product(u, ur)[..., :1]
    return ur / norm


def act(u: torch.Tensor, odd: torch.Tensor | bool, x: torch.Tensor) -> torch.Tensor:
    """rho_u(x). u (..., 16) and odd (...,) broadcast against x's leading axes."""
    odd = torch.as_tensor(odd, device=x.device)
    x = torch.where(odd[..., None], grade_involution(x), x)
    return geometric_product(geometric_product(u, x), versor_inverse(u))


def det_sign(odd: torch.Tensor | bool, dtype=torch.float64) -> torch.Tensor:
    """det of the E(3) element (+1 even versor, -1 odd) as a tensor of `dtype`."""
    odd = torch.as_tensor(odd)
    return torch.where(odd, -1.0, 1.0).to(dtype)


def random_pin(n: int, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """n random Pin(3,0,1) elements: products of 0..4 random unit reflection vectors
    (Gaussian in e0..e3). Returns (u (n, 16), odd (n,) bool)."""
    count = torch.randint(0, 5, (n,), generator=generator)
    u = torch.zeros(n, 16, dtype=torch.float64)
    u[:, 0] = 1.0
    for step in range(4):
        v = torch.zeros(n, 16, dtype=torch.float64)
        v[:, _VECTOR] = torch.randn(n, 4, generator=generator, dtype=torch.float64)
        v = v / v[:, 2:5].norm(dim=-1, keepdim=True)
        u = torch.where((step < count)[:, None], geometric_product(u, v), u)
    return u.to(dtype), (count % 2 == 1)


def _rotor(rot: torch.Tensor) -> torch.Tensor:
    """Unit rotor of R in SO(3) (..., 3, 3): u ~ (1 + sum_i R(e_i) e_i) r_F, with the flip
    F in {1, pi about x, y, z} that keeps the sum far from zero (Shepperd's trick)."""
    shape = rot.shape[:-2]
    flips = torch.diag_embed(torch.tensor(
        [[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=rot.dtype, device=rot.device))
    flip_rotors = rot.new_zeros(4, 16)
    flip_rotors[0, 0] = 1.0
    flip_rotors[1, 10] = flip_rotors[2, 9] = flip_rotors[3, 8] = 1.0  # e23, e13, e12
    traces = torch.einsum("...ij,fji->...f", rot, flips)
    best = traces.argmax(-1)
    flip = flips[best]
    moved = rot @ flip
    basis = rot.new_zeros(3, 16)
    basis[0, 2] = basis[1, 3] = basis[2, 4] = 1.0
    cols = rot.new_zeros(*shape, 3, 16)
    cols[..., 2:5] = moved.transpose(-1, -2)  # row i = R F e_i
    s = geometric_product(cols, basis.expand_as(cols)).sum(-2)
    s[..., 0] += 1.0
    u = geometric_product(s, flip_rotors[best])
    return u / geometric_product(u, reverse(u))[..., :1].sqrt()


def versor_from_rt(rot: torch.Tensor, shift: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Versor u and parity for p -> R p + t with R in O(3): (u (..., 16), odd (...,))."""
    det = torch.linalg.det(rot)
    odd = det < 0
    proper = torch.where(odd[..., None, None], -rot, rot)
    u = _rotor(proper)
    point_reflection = u.new_zeros(16)
    point_reflection[E123] = 1.0  # rho_e123 = p -> -p
    u = torch.where(odd[..., None], geometric_product(point_reflection.expand_as(u), u), u)
    return geometric_product(embed_translation(shift), u), odd


def rt_from_versor(u: torch.Tensor, odd: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The E(3) element (R (..., 3, 3), t (..., 3)) that versor u acts as on points."""
    from equisweep.models.pga.embed import embed_point, extract_point, extract_translation

    eye = torch.eye(3, dtype=u.dtype, device=u.device)
    lead = u.shape[:-1]
    dirs = embed_translation(eye).expand(*lead, 3, 16)
    cols = extract_translation(act(u[..., None, :], odd[..., None], dirs))  # row i = R e_i
    origin = embed_point(u.new_zeros(*lead, 3))
    return cols.transpose(-1, -2), extract_point(act(u, odd, origin))
