"""Samples cut from a cached dataset, and the padded batches of DESIGN §10.

A split is loaded whole into memory (poses and meshes are small); vertex positions are
derived per sample from the poses. Item `i` is one time window of trajectory `i`: input
frames t, t+1 and the target frame t+1+delta. For the train split t is drawn per
(seed, epoch, i), so `set_epoch` gives each epoch fresh windows and every run the same ones;
val/test use epoch 0 unless told otherwise.
"""

from __future__ import annotations

import operator
import os
from pathlib import Path

import numpy as np
import torch

from equisweep.errors import UserError
from equisweep.task.generate import dataset_path, load_manifest, read_shard_bytes
from equisweep.task.geometry import quat_to_matrix
from equisweep.task.shards import read_shard

FLOOR_POINT = np.zeros(3, dtype=np.float32)
UP = np.array([0.0, 0.0, 1.0], dtype=np.float32)
POINT_KEYS = ("x0", "x1", "c0", "c1", "y")
_MASK64 = (1 << 64) - 1


class RigidBodyDataset(torch.utils.data.Dataset):
    """`ds[i]` -> dict of float32 numpy arrays for one scene (V = its vertex count):
    x0, x1, c0, c1, y (V, 3), body (V,) int64, floor_point (3,), up (3,)."""

    def __init__(self, path: str | os.PathLike, split: str = "train", limit: int | None = None,
                 seed: int = 0, delta: int = 1):
        if split not in ("train", "val", "test"):
            raise UserError(f"split: expected train, val or test, got {split!r}")
        path = Path(path)
        manifest = load_manifest(path)
        self.path, self.split, self.seed = path, split, int(seed)
        self.epoch = 0
        self.frames = int(manifest["frames"])
        self.frame_dt = float(manifest["frame_dt"])
        total = int(manifest["splits"][split]["trajectories"])
        asked = limit
        limit = total if limit is None else _integer(limit)
        if limit is None or not 0 <= limit <= total:
            raise UserError(f"{split}_trajectories: {asked!r} is not between 0 and the "
                            f"{total} {split} trajectories in {path}")
        self.delta = _integer(delta)
        if self.delta is None or not 1 <= self.delta <= self.frames - 2:
            raise UserError(f"task.delta: {delta!r} leaves no window in {self.frames} frames")
        self._load(path, manifest["splits"][split]["shards"], limit)

    @classmethod
    def from_config(cls, cfg, split: str = "train", limit: int | None = None, seed: int = 0,
                    cache_dir=None) -> RigidBodyDataset:
        """The dataset of an already generated `TaskConfig` (see `ensure_dataset`)."""
        return cls(dataset_path(cfg, cache_dir), split, limit, seed, cfg.delta)

    def _load(self, path: Path, entries: list[dict], limit: int) -> None:
        parts, have = [], 0
        for entry in entries:
            if have >= limit:
                break
            try:
                shard = read_shard(read_shard_bytes(path, entry))
            except UserError:
                raise
            except Exception:  # noqa: BLE001 - checksum matched yet unreadable: not ours
                raise UserError(f"{path / entry['file']}: not a readable shard") from None
            take = min(entry["count"], limit - have)
            nb = shard["n_bodies"][:take]
            bodies = int(nb.sum())
            nv = shard["n_verts"][:bodies]
            parts.append((nb, nv, shard["local"][: int(nv.sum())], shard["pos"][:bodies],
                          shard["quat"][:bodies]))
            have += take
        cat = lambda k, shape, dt: (np.concatenate([p[k] for p in parts]) if parts
                                    else np.zeros(shape, dt))
        n_bodies = cat(0, (0,), np.int32).astype(np.int64)
        n_verts = cat(1, (0,), np.int32).astype(np.int64)
        local = cat(2, (0, 3), np.float32)
        self.local_h = np.concatenate([local, np.ones((len(local), 1), np.float32)], axis=1)
        # Poses as (B, F, 3, 4) affine maps [R | c], made once: a sample is then two gathers
        # and one einsum (48 bytes per body and frame instead of 28, for a 3x faster sample).
        pos = cat(3, (0, self.frames, 3), np.float32)
        quat = cat(4, (0, self.frames, 4), np.float32)
        self.pose = np.concatenate([quat_to_matrix(quat), pos[..., None]], axis=-1)
        self.body_start = np.concatenate([[0], np.cumsum(n_bodies)])
        self.vert_start = np.concatenate([[0], np.cumsum(n_verts)])
        # Each vertex's body index within its own scene.
        global_body = np.repeat(np.arange(len(n_verts)), n_verts)
        traj_of_body = np.repeat(np.arange(len(n_bodies)), n_bodies)
        self.vert_body = global_body - self.body_start[traj_of_body][global_body]
        self.n_bodies, self.n_verts = n_bodies, n_verts

    # ---- sampling -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.n_bodies)

    @property
    def windows(self) -> int:
        """Window starts per trajectory."""
        return self.frames - 1 - self.delta

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def window_start(self, index: int, epoch: int | None = None) -> int:
        epoch = self.epoch if epoch is None else epoch
        return _mix(self.seed, epoch, index) % self.windows

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        return self.sample(index, self.window_start(index))

    def scene_tokens(self) -> np.ndarray:
        """Vertex tokens of every trajectory's scene (what `sample` returns V of), by index."""
        return np.diff(self.vert_start[self.body_start])

    def sample(self, index: int, start: int) -> dict[str, np.ndarray]:
        """Trajectory `index`, input frames start and start+1, target start+1+delta."""
        b0, b1 = self.body_start[index], self.body_start[index + 1]
        v0, v1 = self.vert_start[b0], self.vert_start[b1]
        if self.delta == 1:
            pose = self.pose[b0:b1, start:start + 3]
        else:
            pose = self.pose[b0:b1, [start, start + 1, start + 1 + self.delta]]
        body = self.vert_body[v0:v1]
        per_vertex = pose[body]  # (V, 3 frames, 3, 4)
        x = np.einsum("vfij,vj->fvi", per_vertex, self.local_h[v0:v1])
        return {
            "x0": x[0], "x1": x[1], "y": x[2],
            "c0": per_vertex[:, 0, :, 3], "c1": per_vertex[:, 1, :, 3],
            "body": body, "floor_point": FLOOR_POINT, "up": UP,
        }


    def batch(self, indices, starts) -> dict[str, torch.Tensor]:
        """`collate([self.sample(i, s) for i, s in zip(indices, starts)])`, built with whole-
        batch gathers instead of a sample at a time (the same numbers; a step's batch was a
        tenth of a small model's step)."""
        idx = np.asarray(indices, dtype=np.int64)
        start = np.asarray(starts, dtype=np.int64)
        if idx.size == 0:
            raise ValueError("batch: no samples")
        b0 = self.body_start[idx]
        v0 = self.vert_start[b0]
        n = self.vert_start[self.body_start[idx + 1]] - v0
        slot = np.arange(int(n.max()))
        real = slot[None, :] < n[:, None]  # (B, V)
        vert = np.where(real, v0[:, None] + slot[None, :], 0)
        body = self.vert_body[vert]
        frames = np.stack([start, start + 1, start + 1 + self.delta], axis=1)  # (B, 3)
        pose = self.pose[(b0[:, None] + body)[:, :, None], frames[:, None, :]]  # (B,V,3,3,4)
        x = np.einsum("bvfij,bvj->fbvi", pose, self.local_h[vert])
        keep = real[None, :, :, None]
        points = {"x0": x[0], "x1": x[1], "y": x[2], "c0": pose[:, :, 0, :, 3],
                  "c1": pose[:, :, 1, :, 3]}
        out = {k: torch.from_numpy(np.where(keep[0], points[k], 0.0).astype(np.float32))
               for k in POINT_KEYS}
        out["body"] = torch.from_numpy(np.where(real, body, -1))
        out["mask"] = out["body"] >= 0
        out["floor_point"] = torch.from_numpy(np.tile(FLOOR_POINT, (idx.size, 1)))
        out["up"] = torch.from_numpy(np.tile(UP, (idx.size, 1)))
        return out


def collate(samples: list[dict]) -> dict[str, torch.Tensor]:
    """Pad to the largest scene: float32 points, `body` = -1 and `mask` = False on padding."""
    if not samples:
        raise ValueError("collate: no samples")
    lengths = [len(s["body"]) for s in samples]
    n, v = len(samples), max(lengths)
    points = np.zeros((len(POINT_KEYS), n, v, 3), dtype=np.float32)
    body = np.full((n, v), -1, dtype=np.int64)
    for b, (s, length) in enumerate(zip(samples, lengths)):
        for k, key in enumerate(POINT_KEYS):
            points[k, b, :length] = s[key]
        body[b, :length] = s["body"]
    out = {key: torch.from_numpy(points[k]) for k, key in enumerate(POINT_KEYS)}
    out["body"] = torch.from_numpy(body)
    out["mask"] = out["body"] >= 0
    out["floor_point"] = torch.from_numpy(np.stack([s["floor_point"] for s in samples]))
    out["up"] = torch.from_numpy(np.stack([s["up"] for s in samples]))
    return {k: (t.float() if t.is_floating_point() else t) for k, t in out.items()}


def _integer(value) -> int | None:
    """Python or numpy integers (not bools, not floats) as int; None otherwise."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:
        return None


def _mix(*values: int) -> int:
    """splitmix64 over the values: a cheap, well-spread deterministic window choice."""
    h = 0x9E3779B97F4A7C15
    for v in values:
        h = (h ^ (int(v) & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & _MASK64
        h ^= h >> 31
    return h
