"""`equisweep data generate|info`: build or describe a cached rigid-body dataset.

task/ never imports Ray: `--address` needs an `executor_for(address)` handed in by the caller
(`equisweep.sweep.cli_data` gives one that runs shards as Ray tasks).
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable

from equisweep.task.config import SHAPE_KINDS, TaskConfig

# The integer TaskConfig fields this command sets: field -> (metavar, what it is).
_INT_FLAGS = {
    "trajectories": ("N", "train pool size"),
    "val_trajectories": ("N", "validation trajectories"),
    "test_trajectories": ("N", "test trajectories"),
    "vertices": ("K", "vertices of a random hull (and of a prism)"),
    "frames": ("F", "frames per trajectory"),
    "seed": ("S", "seed of the scene generator"),
    "shard_size": ("N", "trajectories per shard"),
}
_FIELDS = (*_INT_FLAGS, "bodies", "shapes")


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    sub.required = True
    gen = sub.add_parser(
        "generate", help="simulate trajectories into a cached dataset (resumes, repairs)",
        description="Simulate scenes with MuJoCo into DIR/<config hash>/ (shards + "
                    "manifest.json). Rerunning finishes an interrupted generation and "
                    "repairs damaged shards; a finished dataset is left as it is.")
    defaults = TaskConfig()  # the flags' defaults are the task's own
    for name, (metavar, what) in _INT_FLAGS.items():
        default = getattr(defaults, name)
        gen.add_argument(_flag(name), type=int, default=default, metavar=metavar,
                         help=f"{what} (default {default})")
    gen.add_argument("--bodies", type=int, nargs=2, default=list(defaults.bodies),
                     metavar=("MIN", "MAX"),
                     help="bodies per scene (default {} {})".format(*defaults.bodies))
    gen.add_argument("--shapes", nargs="+", default=None, metavar="KIND",
                     help=f"shape kinds (default: {' '.join(defaults.shapes)})")
    gen.add_argument("--out", metavar="DIR", default=None,
                     help="cache folder (default $EQUISWEEP_DATA or ~/.cache/equisweep/data)")
    gen.add_argument("--workers", type=int, default=None, metavar="W",
                     help="local worker processes (default: all CPUs)")
    gen.add_argument("--address", default=None, metavar="A",
                     help="Ray cluster address: generate shards as Ray tasks there "
                          "(default: $RAY_ADDRESS if set, else local processes)")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    info = sub.add_parser("info", help="describe a dataset folder (or a cache of them)",
                          description="Config, shards, trajectories, body and vertex counts "
                                      "and size on disk of DIR (a dataset folder or a cache "
                                      "folder holding datasets).")
    info.add_argument("dir", metavar="DIR", help="a dataset folder or a cache folder")
    info.add_argument("--verify", action="store_true",
                      help="also re-hash every shard against the manifest")


def run(args: argparse.Namespace, executor_for: Callable[[str], object] | None = None) -> int:
    """`executor_for(address)`: an executor with a concurrent.futures-style `map` on the
    cluster at `address`; without one, `--address` is refused."""
    if args.data_command == "generate":
        return _generate(args, executor_for)
    return _info(args)


def _generate(args, executor_for) -> int:
    from equisweep.errors import UserError
    from equisweep.task.generate import ensure_dataset, is_complete, load_manifest

    fields = {name: getattr(args, name) for name in _INT_FLAGS}
    fields.update(bodies=tuple(args.bodies), shapes=tuple(args.shapes or SHAPE_KINDS))
    try:
        cfg = TaskConfig.from_dict(fields)
    except UserError as exc:
        raise UserError(_flag_names(str(exc))) from None
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers: expected a positive integer, got {args.workers}")
    address = args.address or os.environ.get("RAY_ADDRESS")
    # Join a cluster only when there is something to generate.
    done = is_complete(cfg, args.out, verify=True)
    executor = None
    if address and not done:
        if executor_for is None:
            raise UserError("--address: no cluster executor here (run `equisweep data`)")
        executor = executor_for(address)
    path = ensure_dataset(cfg, cache_dir=args.out, workers=args.workers,
                          progress=not args.quiet, executor=executor, verify=True)
    print(_describe(path, load_manifest(path)))
    return 0


def _info(args) -> int:
    from pathlib import Path

    from equisweep.errors import UserError
    from equisweep.task.generate import MANIFEST, load_manifest, read_shard_bytes

    root = Path(args.dir).expanduser()
    if not root.exists():
        raise UserError(f"{root}: no such folder")
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    if (root / MANIFEST).exists() or any(root.glob("*.npz")):
        folders = [root]
    else:
        folders = sorted(p.parent for p in root.glob(f"*/{MANIFEST}"))
        if not folders:
            raise UserError(f"{root}: not an equisweep dataset (no {MANIFEST}) "
                            f"and holds none")
    for i, folder in enumerate(folders):
        manifest = load_manifest(folder)
        if args.verify:
            for split in manifest["splits"].values():
                for entry in split["shards"]:
                    read_shard_bytes(folder, entry)
        print(("\n" if i else "") + _describe(folder, manifest, verified=args.verify))
    return 0


def _describe(path, manifest: dict, verified: bool = True) -> str:
    import json

    cfg = manifest["config"]
    lines = [f"dataset   {path}", f"key       {manifest['key']}",
             f"config    {json.dumps(cfg, sort_keys=True)}",
             f"frames    {manifest['frames']} every {manifest['frame_dt']:g} s",
             f"generator mujoco {manifest['generator']['mujoco']}, "
             f"numpy {manifest['generator']['numpy']}"]
    disk = 0
    for name, split in manifest["splits"].items():
        shards = split["shards"]
        n = split["trajectories"]
        disk += sum(e["bytes"] for e in shards)
        if not shards:
            lines.append(f"{name:<9} 0 trajectories")
            continue
        bodies = sum(e["bodies"] for e in shards)
        tokens = sum(e["tokens"] for e in shards)
        lines.append(
            f"{name:<9} {n} trajectories in {len(shards)} shards; bodies/scene "
            f"{min(e['bodies_min'] for e in shards)}-{max(e['bodies_max'] for e in shards)} "
            f"(mean {bodies / n:.2f}); vertices/scene "
            f"{min(e['tokens_min'] for e in shards)}-{max(e['tokens_max'] for e in shards)} "
            f"(mean {tokens / n:.1f})")
    lines.append(f"size      {disk / 2**20:.2f} MiB on disk"
                 + ("; checksums verified" if verified else ""))
    return "\n".join(lines)


def _flag_names(message: str) -> str:
    """`task.val_trajectories` -> `--val-trajectories` for the fields this command sets."""
    return re.sub(r"task\.(\w+)",
                  lambda m: _flag(m.group(1)) if m.group(1) in _FIELDS else m.group(0), message)
