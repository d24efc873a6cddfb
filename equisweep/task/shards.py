"""One shard = a run of consecutive trajectories of one split, as a deterministic .npz.

`np.savez` stamps the current time into the zip headers; this writer fixes every header
field, so a shard's bytes depend on the config alone and any worker count (or node) writes
the same file. Layout (ragged data kept flat, offsets rebuilt on load):

  info      uint8  JSON {key, split, shard, start, count, frames}
  n_bodies  (T,)   int32   bodies per trajectory
  kinds     (B,)   int8    index into SHAPE_KINDS
  n_verts   (B,)   int32   vertices per body
  local     (V, 3) float32 vertices in each body's inertial frame
  pos       (B, F, 3) float32 centre of mass per frame
  quat      (B, F, 4) float32 orientation per frame, (w, x, y, z)
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from equisweep.task.config import TaskConfig

SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
FIELDS = ("info", "n_bodies", "kinds", "n_verts", "local", "pos", "quat")


def trajectory_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Trajectory `index` of `split` is the same whatever the pool size or the shard layout."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLIT_CODES[split], index]))


def generate_shard(job: tuple[dict, str, int, int, int]) -> bytes:
    """Simulate trajectories [start, start+count) of a split; return the shard's bytes.

    `job` = (generation dict, split, shard index, start, count); plain data so any executor
    (process pool, Ray) can ship it.
    """
    from equisweep.task.simulate import sample_scene, simulate

    gen, split, shard, start, count = job
    cfg = config_from_generation(gen)
    trajs = [simulate(sample_scene(trajectory_rng(cfg.seed, split, i), cfg), cfg)
             for i in range(start, start + count)]
    info = {"key": cfg.key(), "split": split, "shard": shard, "start": start, "count": count,
            "frames": cfg.frames}
    arrays = {
        "info": np.frombuffer(json.dumps(info, sort_keys=True).encode(), dtype=np.uint8),
        "n_bodies": np.array([len(t.local) for t in trajs], dtype=np.int32),
        "kinds": np.concatenate([t.kinds for t in trajs]).astype(np.int8),
        "n_verts": np.array([len(v) for t in trajs for v in t.local], dtype=np.int32),
        "local": np.concatenate([v for t in trajs for v in t.local]).astype(np.float32),
        "pos": np.concatenate([t.pos for t in trajs]).astype(np.float32),
        "quat": np.concatenate([t.quat for t in trajs]).astype(np.float32),
    }
    return npz_bytes(arrays)


def config_from_generation(gen: dict) -> TaskConfig:
    return TaskConfig.from_dict({k: v for k, v in gen.items() if k != "format"})


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed .npz that `np.load` reads, with fixed zip headers."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, arr in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            info.create_system = 3
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def read_shard(data: bytes) -> dict[str, np.ndarray]:
    """Parse shard bytes; raises ValueError (or a zip/numpy error) when they are not a shard."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        missing = [f for f in FIELDS if f not in npz.files]
        if missing:
            raise ValueError(f"missing arrays {missing}")
        out = {f: npz[f] for f in FIELDS}
    out["info"] = json.loads(out["info"].tobytes().decode())
    return out


def check_shard(data: bytes, expect: dict) -> dict | None:
    """The shard's info if every member's CRC checks out and it is the shard `expect` names."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            if zf.testzip() is not None:
                return None
        shard = read_shard(data)
    except Exception:  # noqa: BLE001 - any damage means "regenerate it"
        return None
    info = shard["info"]
    if any(info.get(k) != v for k, v in expect.items()):
        return None
    return shard
