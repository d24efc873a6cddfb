"""K models of one family and size as one stack: their parameters are the rows of one
(K, N) leaf tensor, and one `torch.func.vmap` of `functional_call` runs all K on a batch in
one forward and one backward.

Why one flat leaf, not `stack_module_state`'s one stacked tensor per parameter: the
optimizer (StackedAdamW) and per-member gradient clipping are then a handful of whole-stack
ops whatever the model's parameter count, and dropping a diverged member is one row index.
Each parameter is a slice of the leaf (`split` along dim 1; its backward is one `cat`).
Buffers are constants of the architecture (index tables, fixed Fourier frequencies): the
members share the first model's, unstacked.

A member's state dict is exactly the state dict of the same model trained alone, so a member
checkpoint restores into `iter_trial` and a trial checkpoint into a stack.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch.func import functional_call, vmap

from equisweep.models import build_model


class StackedModel:
    """`seeds[k]` initialises member k exactly as `iter_trial` initialises a trial of that
    seed; calling the stack on a batch returns (K, B, V, 3)."""

    def __init__(self, family: str, size: dict, seeds: list[int], device: torch.device,
                 dtype: torch.dtype | None = None):
        rows = []
        for seed in seeds:
            torch.manual_seed(int(seed))
            model = build_model(family, size).to(device)
            if dtype is not None:
                model = model.to(dtype)
            rows.append(torch.cat([p.detach().reshape(-1) for p in model.parameters()]))
        self.base = model  # the structure and the shared buffers
        named = list(self.base.named_parameters())
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.buffers = dict(self.base.named_buffers())
        self.flat = torch.stack(rows).requires_grad_()
        for p in self.base.parameters():  # the base's own weights are never used
            p.requires_grad_(False)

    @property
    def size(self) -> int:
        return int(self.flat.shape[0])

    def params(self) -> dict[str, torch.Tensor]:
        k = self.size
        pieces = self.flat.split(self.numels, dim=1)
        return {n: t.reshape(k, *s) for n, t, s in zip(self.names, pieces, self.shapes)}

    def _one(self, params: dict, batch: dict) -> torch.Tensor:
        return functional_call(self.base, (params, self.buffers), (batch,))

    def __call__(self, batch: dict) -> torch.Tensor:
        return vmap(self._one, in_dims=(0, None))(self.params(), batch)

    def train(self, mode: bool = True) -> StackedModel:
        self.base.train(mode)
        return self

    def eval(self) -> StackedModel:
        return self.train(False)

    def keep(self, rows: torch.Tensor) -> None:
        """Keep only the members at `rows` (in that order)."""
        self.flat = self.flat.detach()[rows].clone().requires_grad_()

    def member_state_dict(self, k: int) -> OrderedDict:
        """Member k's weights under the single model's state-dict names (buffers included)."""
        out = OrderedDict()
        flat = self.flat.detach()[k]
        params = dict(zip(self.names, flat.split(self.numels)))
        for name, value in self.base.state_dict().items():
            out[name] = (params[name].reshape(value.shape).clone() if name in params
                         else value.clone())
        return out

    def load_member(self, k: int, state: dict) -> None:
        with torch.no_grad():
            self.flat[k].copy_(torch.cat([state[n].reshape(-1).to(self.flat)
                                          for n in self.names]))

    def to_module(self, k: int) -> torch.nn.Module:
        """Member k as a plain model (a copy)."""
        import copy

        model = copy.deepcopy(self.base)
        model.load_state_dict(self.member_state_dict(k))
        return model


class StackedAdamW:
    """AdamW over the stack's (K, N) leaf with per-member hyperparameters: the same
    arithmetic as `torch.optim.AdamW` (its single-tensor path) applied to each row, with
    lr, betas and weight decay a (K, 1) column each. Per-member gradient clipping is
    `clip_grad_norm_`'s rule per row."""

    EPS = 1e-8  # torch.optim.AdamW's default; not a searched hyperparameter

    def __init__(self, flat: torch.Tensor, betas: list[tuple[float, float]],
                 weight_decay: list[float]):
        self.flat = flat
        col = dict(device=flat.device, dtype=flat.dtype)
        self.beta1 = torch.tensor([b[0] for b in betas], **col)[:, None]
        self.beta2 = torch.tensor([b[1] for b in betas], **col)[:, None]
        self.wd = torch.tensor(weight_decay, **col)[:, None]
        self.exp_avg = torch.zeros_like(flat, memory_format=torch.contiguous_format)
        self.exp_avg_sq = torch.zeros_like(flat, memory_format=torch.contiguous_format)
        self.steps = [0] * flat.shape[0]

    def keep(self, rows: torch.Tensor, flat: torch.Tensor) -> None:
        self.flat = flat
        for name in ("beta1", "beta2", "wd", "exp_avg", "exp_avg_sq"):
            setattr(self, name, getattr(self, name)[rows].clone())
        self.steps = [self.steps[int(i)] for i in rows]

    def zero_grad(self) -> None:
        self.flat.grad = None

    def clip(self, max_norm: torch.Tensor) -> torch.Tensor:
        """Scale each member's gradient to norm <= max_norm[k]; the norms before scaling."""
        grad = self.flat.grad
        norms = torch.linalg.vector_norm(grad, dim=1)
        coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        grad.mul_(coef[:, None])
        return norms

    @torch.no_grad()
    def step(self, lr: list[float]) -> None:
        grad, p = self.flat.grad, self.flat
        col = dict(device=p.device, dtype=p.dtype)
        self.steps = [s + 1 for s in self.steps]
        lr_t = torch.tensor(lr, **col)[:, None]
        p.mul_(1 - lr_t * self.wd)
        self.exp_avg.lerp_(grad, 1 - self.beta1)
        self.exp_avg_sq.mul_(self.beta2).add_(grad * grad * (1 - self.beta2))
        steps = torch.tensor(self.steps, **col)[:, None]
        bias1 = 1 - self.beta1 ** steps
        bias2_sqrt = (1 - self.beta2 ** steps).sqrt()
        denom = (self.exp_avg_sq.sqrt() / bias2_sqrt).add_(self.EPS)
        p.sub_(self.exp_avg / denom * (lr_t / bias1))

    def member_state_dict(self, k: int, stack: StackedModel, lr: float) -> dict:
        """Member k's state in `torch.optim.AdamW.state_dict()`'s format (one group)."""
        exp_avg = self.exp_avg[k].split(stack.numels)
        exp_avg_sq = self.exp_avg_sq[k].split(stack.numels)
        state = {}
        if self.steps[k]:
            for i, shape in enumerate(stack.shapes):
                state[i] = {"step": torch.tensor(float(self.steps[k])),
                            "exp_avg": exp_avg[i].reshape(shape).clone(),
                            "exp_avg_sq": exp_avg_sq[i].reshape(shape).clone()}
        group = {"lr": lr, "betas": (float(self.beta1[k]), float(self.beta2[k])),
                 "eps": self.EPS, "weight_decay": float(self.wd[k]), "amsgrad": False,
                 "maximize": False, "foreach": None, "capturable": False,
                 "differentiable": False, "fused": None, "decoupled_weight_decay": True,
                 "params": list(range(len(stack.names)))}
        return {"state": state, "param_groups": [group]}

    def load_member(self, k: int, state: dict) -> None:
        entries = state["state"]
        if not entries:
            return
        with torch.no_grad():
            n = len(entries)
            self.exp_avg[k].copy_(torch.cat([entries[i]["exp_avg"].reshape(-1)
                                             for i in range(n)]).to(self.exp_avg))
            self.exp_avg_sq[k].copy_(torch.cat([entries[i]["exp_avg_sq"].reshape(-1)
                                                for i in range(n)]).to(self.exp_avg_sq))
        self.steps[k] = int(float(entries[0]["step"]))
