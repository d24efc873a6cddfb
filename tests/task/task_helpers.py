"""Helpers shared by the task tests."""

from __future__ import annotations

import numpy as np

from equisweep.task.generate import load_manifest, read_shard_bytes
from equisweep.task.geometry import quat_to_matrix
from equisweep.task.shards import read_shard


def shard_poses(path, split="train", shard=0):
    """Trajectories of one shard straight from the file: (local, body, pos, rot) each."""
    entry = load_manifest(path)["splits"][split]["shards"][shard]
    s = read_shard(read_shard_bytes(path, entry))
    out, b, v = [], 0, 0
    for n in s["n_bodies"]:
        nv = s["n_verts"][b:b + n]
        body = np.repeat(np.arange(n), nv)
        out.append((s["local"][v:v + nv.sum()].astype(np.float64), body,
                    s["pos"][b:b + n].astype(np.float64),
                    quat_to_matrix(s["quat"][b:b + n].astype(np.float64))))
        b, v = b + n, v + nv.sum()
    return out
