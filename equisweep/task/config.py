"""The task's configuration: what a dataset is made of, validated, with a content hash.

Two groups of fields: the *generation* fields decide the bytes of the shards (and so the cache
folder, `key()`); `delta`, the gap between the second input frame and the target, only
decides how samples are cut from the trajectories, so datasets are shared across deltas.

Physics defaults: MuJoCo timestep 5 ms and a frame every 4 steps (20 ms), so the default 96
frames (1.92 s) cover the flight, the impacts and most of the settling of thrown bodies;
every body is at rest by about 4 s.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from equisweep.errors import UserError

SHAPE_KINDS: tuple[str, ...] = ("hull", "box", "tetrahedron", "icosahedron", "prism")

# Bump when the generator's output changes for the same config, so old caches are not reused.
FORMAT_VERSION = 2

# Fields that do not change what is generated.
_SAMPLING_FIELDS = frozenset({"delta"})
_FLOAT_FIELDS = ("throw_speed", "timestep", "gravity", "friction")


def default_cache_dir() -> Path:
    """`$EQUISWEEP_DATA`, else `~/.cache/equisweep/data`."""
    env = os.environ.get("EQUISWEEP_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "equisweep" / "data"


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """The rigid-body benchmark.

    trajectories: size of the train pool; `val_trajectories`/`test_trajectories` are generated
    in addition, from disjoint seeds. `bodies`: (min, max) bodies per scene, inclusive.
    `vertices`: vertex count of a random hull and of a prism (2n for an n-gon,
    n = max(3, vertices // 2)); box (8), tetrahedron (4) and icosahedron (12) keep their own
    counts (`equisweep.task.shapes.vertex_count` is the rule).
    `size`: (min, max) circumradius of a body in metres. `throw_speed`: the largest initial
    horizontal speed (m/s) towards the scene centre. `frame_every`: MuJoCo steps per frame.
    """

    trajectories: int = 512
    bodies: tuple[int, int] = (3, 10)
    vertices: int = 12
    seed: int = 0
    frames: int = 96
    delta: int = 1
    shapes: tuple[str, ...] = SHAPE_KINDS
    val_trajectories: int = 64
    test_trajectories: int = 64
    size: tuple[float, float] = (0.15, 0.35)
    throw_speed: float = 3.0
    timestep: float = 0.005
    frame_every: int = 4
    gravity: float = 9.81
    friction: float = 0.8
    shard_size: int = 64

    def __post_init__(self):
        # YAML gives lists; keep the dataclass hashable and its JSON canonical.
        for name in ("bodies", "size", "shapes"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    # ---- validation -------------------------------------------------------------------------
    def validate(self) -> TaskConfig:
        """Raise UserError naming `task.<field>` for the first bad value; return self."""
        _int(self, "trajectories", 1, 10_000_000)
        _int(self, "val_trajectories", 0, 10_000_000)
        _int(self, "test_trajectories", 0, 10_000_000)
        _int(self, "vertices", 4, 1024)
        _int(self, "seed", 0, 2**63 - 1)
        _int(self, "delta", 1, 10_000)
        _int(self, "frames", 3, 100_000)
        _int(self, "frame_every", 1, 10_000)
        _int(self, "shard_size", 1, 100_000)
        lo, hi = _pair(self, "bodies", int)
        if lo < 1:
            raise UserError(f"task.bodies: the minimum must be at least 1, got {lo}")
        if hi > 64:
            raise UserError(f"task.bodies: at most 64 bodies per scene, got {hi}")
        if lo > hi:
            raise UserError(f"task.bodies: minimum {lo} is greater than maximum {hi}")
        slo, shi = _pair(self, "size", float)
        if not 0.01 <= slo <= shi <= 10.0:
            raise UserError(
                f"task.size: need 0.01 <= min <= max <= 10 (metres), got [{slo}, {shi}]"
            )
        _float(self, "throw_speed", 0.0, 100.0)
        _float(self, "timestep", 1e-5, 0.05)
        _float(self, "gravity", 0.0, 100.0)
        _float(self, "friction", 0.0, 10.0)
        if self.frames < self.delta + 2:
            raise UserError(
                f"task.delta: {self.delta} leaves no window in {self.frames} frames "
                f"(need frames >= delta + 2)"
            )
        shapes = self.shapes
        if isinstance(shapes, str) or not isinstance(shapes, tuple) or not shapes:
            raise UserError(f"task.shapes: expected a non-empty list of {list(SHAPE_KINDS)}")
        for kind in shapes:
            if kind not in SHAPE_KINDS:
                raise UserError(
                    f"task.shapes: unknown shape kind {kind!r} (known: {', '.join(SHAPE_KINDS)})"
                )
        if len(set(shapes)) != len(shapes):
            raise UserError(f"task.shapes: listed twice in {list(shapes)}")
        return self

    # ---- dict round trip ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict; `from_dict(to_dict())` gives the same config."""
        d = dataclasses.asdict(self)
        for name in ("bodies", "size", "shapes"):
            d[name] = list(d[name])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TaskConfig:
        """Build and validate; unknown keys and bad values raise UserError naming `task.<key>`.

        Accepts `name: rigid_body` (the sweep YAML names its task) and drops it.
        """
        if not isinstance(d, dict):
            raise UserError(f"task: expected a mapping, got {type(d).__name__}")
        d = dict(d)
        name = d.pop("name", "rigid_body")
        if name != "rigid_body":
            raise UserError(f"task.name: unknown task {name!r} (known: rigid_body)")
        known = {f.name for f in dataclasses.fields(cls)}
        for key in d:
            if key not in known:
                raise UserError(f"task.{key}: unknown key (known: {', '.join(sorted(known))})")
        for name in ("bodies", "size", "shapes"):
            if name in d and isinstance(d[name], list):
                d[name] = tuple(d[name])
        return cls(**d).validate()

    def replace(self, **changes) -> TaskConfig:
        return dataclasses.replace(self, **changes)

    # ---- identity ----------------------------------------------------------------------------
    def generation_dict(self) -> dict[str, Any]:
        """The fields that decide the shards' bytes (plus the format version)."""
        d = {k: v for k, v in self.to_dict().items() if k not in _SAMPLING_FIELDS}
        # YAML's `gravity: 10` and `gravity: 10.0` are the same dataset.
        for name in _FLOAT_FIELDS:
            d[name] = float(d[name])
        d["size"] = [float(x) for x in d["size"]]
        d["format"] = FORMAT_VERSION
        return d

    def key(self) -> str:
        """Content hash of the generation config: the cache folder's name."""
        blob = json.dumps(self.generation_dict(), sort_keys=True, separators=(",", ":"))
        return "rb-" + hashlib.sha256(blob.encode()).hexdigest()[:16]

    def max_tokens(self) -> int:
        """Vertex tokens of the largest possible scene: the most bodies, each of the shape
        with the most vertices. The spec's `flops_per_step` and the budget count every step at
        this length (a bound); the trainer counts each step at its batch's padded length."""
        from equisweep.task.shapes import vertex_count  # shapes pulls in scipy

        return int(self.bodies[1]) * max(vertex_count(kind, self.vertices) for kind in self.shapes)

    def split_sizes(self) -> dict[str, int]:
        return {
            "train": self.trajectories,
            "val": self.val_trajectories,
            "test": self.test_trajectories,
        }


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(cfg, name, lo, hi):
    v = getattr(cfg, name)
    if not _is_int(v):
        raise UserError(f"task.{name}: expected an integer, got {v!r}")
    if not lo <= v <= hi:
        raise UserError(f"task.{name}: must be between {lo} and {hi}, got {v}")


def _float(cfg, name, lo, hi):
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise UserError(f"task.{name}: expected a number, got {v!r}")
    if not lo <= v <= hi:
        raise UserError(f"task.{name}: must be between {lo} and {hi}, got {v}")


def _pair(cfg, name, typ):
    v = getattr(cfg, name)
    ok = isinstance(v, tuple) and len(v) == 2
    if ok and typ is int:
        ok = all(_is_int(x) for x in v)
    elif ok:
        ok = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)
    if not ok:
        kind = "integers" if typ is int else "numbers"
        raise UserError(f"task.{name}: expected [min, max] {kind}, got {v!r}")
    return v
