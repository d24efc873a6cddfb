"""Zero-parameter baselines: what a loss must beat to show that a model learned anything.

Each baseline maps a batch (DESIGN §10) to predicted positions, like a model, so it is
evaluated by the very code that evaluates models (`task.evaluation`), on the same windows.
Frame convention (task/dataset.py): x0 and x1 are frames t and t+1, the target is frame
t+1+delta.

- `copy_last`: y = x1.
- `constant_velocity`: y = x1 + delta·(x1 − x0).
- `ballistic`: constant velocity plus free fall, stopped at the floor. MuJoCo's semi-implicit
  Euler integrator makes the second difference of frame positions in free flight exactly
  −g·dt² (dt = one frame), so δ frames ahead a falling body has dropped g·dt²·δ(δ+1)/2 below
  its constant-velocity position. A body falls (rigidly) by that amount or until its lowest
  vertex touches the floor, whichever is less; a body already on (or, by constant velocity,
  through) the floor is not moved down at all, which keeps resting bodies at rest. Last, a
  vertex that constant velocity carried through the floor (an impact) is put back on it.
  On the quickstart's test windows this is 0.73× / 0.60× / 0.50× the constant-velocity
  loss at delta 1 / 4 / 8: most of the copy-to-velocity gap that remains is floor impacts.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

# Name → (short description). Order is the order of the store's `baselines` table.
BASELINES = {
    "copy_last": "copy the last input frame: y = x1",
    "constant_velocity": "constant velocity: y = x1 + delta·(x1 − x0)",
    "ballistic": "constant velocity plus gravity, each body stopped at the floor",
}
REFERENCE = "constant_velocity"  # `skill` = 1 − loss / this baseline's test loss


def copy_last(batch: dict, delta: int) -> torch.Tensor:
    return batch["x1"]


def constant_velocity(batch: dict, delta: int) -> torch.Tensor:
    return batch["x1"] + delta * (batch["x1"] - batch["x0"])


def ballistic(batch: dict, delta: int, frame_dt: float, gravity: float) -> torch.Tensor:
    cv = constant_velocity(batch, delta)
    up = batch["up"][:, None, :].to(cv.dtype)  # (B, 1, 3)
    height = ((cv - batch["floor_point"][:, None, :]) * up).sum(-1)  # (B, V)
    body = batch["body"]
    n_body = int(body.max()) + 1 if body.numel() else 0
    if n_body <= 0:
        return cv
    # Lowest constant-velocity height of each body: a masked min over its vertices.
    onehot = body[..., None] == torch.arange(n_body, device=body.device)  # (B, V, K)
    inf = torch.tensor(float("inf"), dtype=height.dtype, device=height.device)
    lowest = torch.where(onehot, height[..., None], inf).amin(dim=1)  # (B, K)
    drop_free = 0.5 * gravity * frame_dt ** 2 * delta * (delta + 1)
    drop = lowest.clamp(min=0.0, max=drop_free)  # (B, K); inf (no such body) → drop_free
    per_vertex = torch.gather(drop, 1, body.clamp_min(0))  # (B, V)
    per_vertex = torch.where(body >= 0, per_vertex, torch.zeros_like(per_vertex))
    # Then no vertex below the floor: constant velocity carries an impacting body through it.
    lift = (per_vertex - height).clamp_min(0.0)
    return cv + (lift - per_vertex)[..., None] * up


def predictor(name: str, delta: int, frame_dt: float, gravity: float
              ) -> Callable[[dict], torch.Tensor]:
    """The baseline `name` as a batch → positions function."""
    if name == "copy_last":
        return lambda b: copy_last(b, delta)
    if name == "constant_velocity":
        return lambda b: constant_velocity(b, delta)
    if name == "ballistic":
        return lambda b: ballistic(b, delta, frame_dt, gravity)
    raise KeyError(f"unknown baseline {name!r} (known: {', '.join(BASELINES)})")


def baseline_rows(path, delta: int, splits=("val", "test")) -> list[dict]:
    """Every baseline on the fixed evaluation windows of each split of the dataset at
    `path` (what the driver writes to the store's `baselines` table)."""
    from equisweep.task.dataset import RigidBodyDataset
    from equisweep.task.evaluation import eval_windows, evaluate
    from equisweep.task.generate import load_manifest

    manifest = load_manifest(path)
    frame_dt = float(manifest["frame_dt"])
    gravity = float(manifest["config"]["gravity"])
    rows = []
    for split in splits:
        ds = RigidBodyDataset(path, split=split, delta=delta)
        if len(ds) == 0:
            continue
        windows = eval_windows(ds)
        for name in BASELINES:
            est = evaluate(predictor(name, delta, frame_dt, gravity), windows, ds)
            rows.append({
                "dataset": str(manifest["key"]), "delta": int(delta), "split": split,
                "baseline": name, "loss": est.loss, "loss_se": est.se,
                "windows": est.windows, "trajectories": est.trajectories,
                "stride": windows.stride,
            })
    return rows
