"""Fork checkpoints of WSD trunks, kept beside the results store until their branches finish.

`<store>/_forks/<sweep>/<branch key>/trial.pt` is the trunk's training state at the branch's
fork step (with the trunk's metric rows up to it), and `fork.json` next to it says which trunk
wrote it at which step. `fork.json` is written last, each file under a hidden temporary name
and then moved into place, so a fork is either complete or absent — on a local disk and on
object stores (s3://, gs://) alike, since both live on the store's own pyarrow filesystem and
move with the store. Tune's own checkpoints cannot serve: Tune keeps only the last
`num_to_keep` of them per trial, and a branch of another trial could not name one.

A fork is deleted once its branch has finished, not when it starts: a branch that crashes
before its own first checkpoint is retried from its fork. Nothing here imports Ray.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pyarrow.fs as pafs

from equisweep.store.layout import forks_dir, is_uri
from equisweep.store.location import resolve

CHECKPOINT = "trial.pt"  # equisweep.train.CHECKPOINT_FILE, without importing torch here
META = "fork.json"


class ForkStore:
    def __init__(self, store_uri: str, sweep: str):
        if not is_uri(store_uri):  # workers run elsewhere: never a relative path
            store_uri = os.path.abspath(os.path.expanduser(store_uri))
        self.store_uri, self.sweep = store_uri, sweep
        self.fs, root = resolve(store_uri)
        self.root = forks_dir(root, sweep)

    def __reduce__(self):  # travels to Ray workers and into the searcher's saved state
        return ForkStore, (self.store_uri, self.sweep)

    def _dir(self, branch_key: str) -> str:
        return f"{self.root}/{branch_key}"

    def _put(self, path: str, data: bytes) -> None:
        folder = path.rsplit("/", 1)[0]
        self.fs.create_dir(folder, recursive=True)
        tmp = f"{folder}/.tmp-{uuid.uuid4().hex}"
        with self.fs.open_output_stream(tmp) as out:
            out.write(data)
        self.fs.move(tmp, path)

    def put(self, branch_key: str, checkpoint_dir: str, *, trunk: str, step: int,
            flops: float | None = None) -> None:
        """Publish the trunk checkpoint in `checkpoint_dir` as `branch_key`'s fork; `flops`:
        the trunk's cumulative FLOPs at `step`, recorded so that a branch resumed from its own
        checkpoint still knows what its trunk spent (the fork lives until the branch ends)."""
        base = self._dir(branch_key)
        self._put(f"{base}/{CHECKPOINT}", (Path(checkpoint_dir) / CHECKPOINT).read_bytes())
        meta = {"trunk": trunk, "step": int(step)}
        if flops is not None:
            meta["flops"] = float(flops)
        self._put(f"{base}/{META}", json.dumps(meta).encode())

    def path(self, branch_key: str) -> str:
        """Where `branch_key`'s fork checkpoint is (for messages)."""
        where = f"{self._dir(branch_key)}/{CHECKPOINT}"
        return where if not is_uri(self.store_uri) else f"{self.store_uri.split('://')[0]}://{where}"

    def info(self, branch_key: str) -> dict | None:
        """{"trunk", "step"[, "flops"]} of a complete fork, else None."""
        try:
            with self.fs.open_input_stream(f"{self._dir(branch_key)}/{META}") as f:
                return json.loads(f.read().decode())
        except (FileNotFoundError, OSError, ValueError):
            return None

    def ready(self) -> set[str]:
        """Branch keys whose fork is complete (one listing, however many forks)."""
        sel = pafs.FileSelector(self.root, allow_not_found=True, recursive=True)
        try:
            infos = self.fs.get_file_info(sel)
        except (FileNotFoundError, OSError):
            return set()
        return {i.path.rsplit("/", 2)[-2] for i in infos
                if i.type == pafs.FileType.File and i.path.endswith(f"/{META}")}

    def fetch(self, branch_key: str, local_dir: str) -> dict | None:
        """Copy a fork's checkpoint into `local_dir` (a folder `train.iter_trial` restores
        from); returns its info, or None when there is no complete fork."""
        info = self.info(branch_key)
        if info is None:
            return None
        os.makedirs(local_dir, exist_ok=True)
        tmp = os.path.join(local_dir, f".{CHECKPOINT}.tmp")
        try:
            with self.fs.open_input_stream(f"{self._dir(branch_key)}/{CHECKPOINT}") as src, \
                    open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, length=1 << 20)
        except (FileNotFoundError, OSError):
            return None
        os.replace(tmp, os.path.join(local_dir, CHECKPOINT))
        return info

    def delete(self, branch_key: str) -> None:
        try:
            self.fs.delete_dir(self._dir(branch_key))
        except (FileNotFoundError, OSError):
            pass
