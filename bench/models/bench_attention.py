"""Written-out attention (models/masks.body_attention) against the SDPA float-mask form it
replaced (issue 18), one training step at a time, lone and stacked, in one process.

    OMP_NUM_THREADS=1 python bench/models/bench_attention.py [--rounds 12] [--block 5] [-k 3]

On the CPU study's task (cached small split: 64 train trajectories) and sizes, alternates
blocks of `--block` training steps (forward, backward, optimizer) with each attention form,
`--rounds` times, and prints the median ms per step of each and their ratio. "before" is the
code as it was: an additive float mask (same-body bias, -inf on padded keys) handed to
F.scaled_dot_product_attention, the stack under the math SDPA kernel.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import equisweep.models.gatr.attention as gatr_attention
import equisweep.models.transformer as transformer
from equisweep.models.masks import body_attention

SIZES = [
    ("transformer", {"width": 16, "depth": 2}),
    ("transformer", {"width": 48, "depth": 3}),
    ("gatr", {"width": 2, "depth": 1, "scalars": 4}),
    ("gatr", {"width": 8, "depth": 2}),
]


def sdpa_attention(q, k, v, key_ok, same, body_bias):
    """The replaced form: the bias and padding as an SDPA float mask."""
    B, T, H, d = q.shape
    pad = torch.zeros(B, 1, 1, T, dtype=q.dtype, device=q.device)
    pad = pad.masked_fill(~key_ok[:, None, None, :], float("-inf"))
    if same is None:
        mask = pad.expand(B, T, H, T)
    else:
        mask = torch.addcmul(
            pad, same.to(q.dtype)[:, :, None, :], body_bias.to(q.dtype)[None, None, :, None]
        )
    if k.dim() == 3:
        out = F.scaled_dot_product_attention(
            q.reshape(B, 1, T * H, d),
            k[:, None],
            v[:, None],
            attn_mask=mask.reshape(B, 1, T * H, T),
        )
        return out.reshape(B, T, H, -1)
    out = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask.transpose(1, 2)
    )
    return out.transpose(1, 2)


def use(fn) -> None:
    transformer.body_attention = fn
    gatr_attention.body_attention = fn


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=12)
    ap.add_argument("--block", type=int, default=5)
    ap.add_argument("-k", type=int, default=3, help="members of the stacked case")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "task"))
    import bench_eval_share as share

    from equisweep.models import build_model
    from equisweep.train import Settings, _loss, _update
    from equisweep.trainer.data import TrialData
    from equisweep.trainer.stack import member_losses
    from equisweep.trainer.vmapped import StackedAdamW, StackedModel

    torch.set_num_threads(1)
    task, _, _, training = share.study("sweeps/cpu-study.yaml", 512)
    dev = torch.device("cpu")
    forms = {"before": sdpa_attention, "now": body_attention}
    for family, size in SIZES:
        cfg = share.config(task, training, family, size, 1000)
        run, data = Settings.of(cfg, dev), TrialData.load(cfg)
        batches = [data.batch(i, dev) for i in range(args.block)]
        for stacked in (False, True):
            states = {}
            for name in forms:
                if stacked:
                    model = StackedModel(family, size, [0] * args.k, dev)
                    opt = StackedAdamW(model.flat, [(0.9, 0.95)] * args.k, [0.0] * args.k)
                else:
                    torch.manual_seed(0)
                    model = build_model(family, size)
                    opt = run.optimizer(model.parameters())
                states[name] = (model, opt, [])
            for rnd in range(args.rounds + 1):
                for name, fn in forms.items():
                    use(fn)
                    model, opt, times = states[name]
                    math = stacked and name == "before"
                    for batch in batches:
                        t0 = time.perf_counter()
                        with sdpa_kernel(SDPBackend.MATH) if math else contextlib.nullcontext():
                            if stacked:
                                opt.zero_grad()
                                member_losses(model(batch), batch).sum().backward()
                                opt.step([1e-3] * args.k)
                            else:
                                _update(model, opt, _loss(model, batch, run, dev), 1.0)
                        if rnd:  # the first round warms up
                            times.append(time.perf_counter() - t0)
            med = {name: 1e3 * statistics.median(s[2]) for name, s in states.items()}
            label = f"stacked K={args.k}" if stacked else "lone"
            print(
                f"{family} {size['width']}x{size['depth']} {label}: before "
                f"{med['before']:.2f} ms/step, now {med['now']:.2f} ms/step, "
                f"before/now {med['before'] / med['now']:.2f}x",
                flush=True,
            )
    use(body_attention)


if __name__ == "__main__":
    main()
