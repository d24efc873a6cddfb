"""A full disk under the data cache (issue 21, class 3): `equisweep run --data-dir` on a
small tmpfs with room for about one shard. Dataset generation must end the run with one
line naming the file and "No space left on device", exit 2, leaving no temporary file and
no manifest (the shards it did write are whole: byte-identical to a clean build), and no
trial started. Once space is freed, the same command builds the dataset, byte-identical,
and runs the sweep. Needs root (mount); skipped where mounting is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from equisweep.spec import parse_spec
from equisweep.store import open_store
from equisweep.task import ensure_dataset
from tests.reliability.conftest import reliability_sweep, write_yaml
from tests.reliability.test_full_store import _fill
from tests.reliability.test_storage_faults import tmpfs

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")]
ROOT = Path(__file__).resolve().parents[2]
ROOM = 40 * 1024  # about one train shard of this task (36 KB), not two


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_full_data_cache_fails_in_one_line_and_the_rerun_builds_it(tmp_path):
    name = "fullcache"
    spec_dict = reliability_sweep(name, steps=20, samples=1)
    sweep_file = write_yaml(tmp_path / f"{name}.yaml", spec_dict)
    spec = parse_spec(spec_dict, source="x.yaml")
    clean = _files(ensure_dataset(spec.task, cache_dir=tmp_path / "ref", progress=False,
                                  workers=1))
    env = {k: v for k, v in os.environ.items()
           if k != "RAY_ADDRESS" and not k.startswith("EQUISWEEP_FAULT")}
    store = tmp_path / "store"
    argv = [sys.executable, "-m", "equisweep.cli", "run", str(sweep_file), "--store",
            str(store), "--no-progress"]
    with tmpfs(tmp_path / "cache", "1m") as cache:
        with open(cache / "filler", "wb", buffering=0) as filler:
            _fill(filler)
            filler.truncate(filler.tell() - ROOM)
        r = subprocess.run([*argv, "--data-dir", str(cache)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip() and not ln.startswith("[")]
        assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
        assert "No space left on device" in lines[0] and str(cache) in lines[0], lines
        print(lines[0])
        left = {n: d for n, d in _relative(_files(cache)).items()
                if n != "filler" and not n.endswith(".lock")}  # the lock file is empty
        assert not [n for n in left if n.endswith(".tmp") or n == "manifest.json"], sorted(left)
        assert all(clean.get(n) == d for n, d in left.items()), sorted(left)  # whole shards
        assert not (store / "trials").exists()  # no trial started

        (cache / "filler").unlink()  # space freed
        r = subprocess.run([*argv, "--data-dir", str(cache)], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        built = {n: d for n, d in _relative(_files(cache)).items() if not n.endswith(".lock")}
        assert built == clean
    finals = open_store(store).trials(name).to_pylist()
    assert sorted(t["status"] for t in finals) == ["finished", "finished"]


def _relative(files: dict[str, bytes]) -> dict[str, bytes]:
    """Cache files keyed as `ensure_dataset`'s folder lists them (without the config hash)."""
    return {n.split("/", 1)[1] if "/" in n else n: d for n, d in files.items()}
