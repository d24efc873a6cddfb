"""The one equivariance checker of the test suite, and the group elements it is used with.

`equivariance_error(fn, x, act_in, act_out)` is |fn(g.x) - g.fn(x)| / |g.fn(x)| for a group
action given as two functions; layer tests pass the action on a family's internal
representation, model tests use `model_error`, which acts on batches with the task's own
code (equisweep.task.symmetry.act: points and the floor move, `up` rotates). Group elements
come from the task's sampler (Haar on O(3), with both handednesses forced) or from
Pin(3,0,1) versors (equisweep.models.pga), read as the E(3) element each one acts as.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from equisweep.models import pga
from equisweep.task.symmetry import act, sample_e3

TOL = {torch.float64: 1e-9, torch.float32: 1e-4}  # DESIGN section 4


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def equivariance_error(fn: Callable, x, act_in: Callable, act_out: Callable) -> float:
    """Relative violation of fn(act_in(x)) == act_out(fn(x)) (no gradients)."""
    with torch.no_grad():
        return relative_error(fn(act_in(x)), act_out(fn(x)))


def e3_elements(n: int, dtype=torch.float64, seed: int = 1):
    """(R, t): n elements of E(3) from the task's sampler, with R a reflection exactly on the
    odd indices (a Haar rotation times a fixed reflection is a Haar reflection)."""
    R, t = sample_e3(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    want = torch.tensor([(-1.0) ** i for i in range(n)], dtype=torch.float64)
    R = R.clone()
    R[:, :, 0] *= (torch.linalg.det(R) * want)[:, None]
    return R.to(dtype), t.to(dtype)


def pin_elements(n: int, seed: int = 0):
    """(u, odd): n random Pin(3,0,1) versors with at least one even and one odd one."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        u, odd = pga.random_pin(n, gen)
        if odd.any() and (~odd).any():
            return u, odd


def pin_as_e3(n: int, dtype=torch.float64, seed: int = 0):
    """(R, t) of the E(3) elements that random Pin(3,0,1) versors act as."""
    R, t = pga.rt_from_versor(*pin_elements(n, seed))
    return R.to(dtype), t.to(dtype)


def model_error(model, batch: dict, R: torch.Tensor, t: torch.Tensor) -> float:
    """Violation of model(g.batch) == g.model(batch), g = (R, t), on real tokens (padding is
    zero on both sides): of the predicted positions, and of the predicted displacement
    pred - x1 alone (a far smaller quantity than the positions), which must rotate."""
    mask = batch["mask"]

    def moved(b):
        return act(b, R, t)

    def positions(pred):
        return act({"x0": pred, "mask": mask}, R, t)["x0"]

    def displacement(b):
        return (model(b) - b["x1"]) * b["mask"][..., None]

    def rotate(d):
        return torch.einsum("bij,bvj->bvi", R, d)

    return max(equivariance_error(model, batch, moved, positions),
               equivariance_error(displacement, batch, moved, rotate))
