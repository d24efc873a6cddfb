"""Storage faults (issue 21, class 3) on real mounts the test creates and removes: a
read-only store (a read-only bind mount) serves every reader while writers refuse before Ray
starts; a full disk (a small tmpfs) under `analyze --out`, `query --output` and the store
itself gives one clear line, exit 2, leaves no partial file, and loses nothing already in the
store. Needs root (mount); skipped where mounting is not allowed."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from equisweep.store import open_store
from tests.analysis.synth import write_sweep
from tests.helpers.cli import run_cli
from tests.sweep.conftest import tiny_sweep_dict


def _mount(*args) -> None:
    r = subprocess.run(["mount", *map(str, args)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount here ({r.stderr.strip() or 'mount failed'}): needs root")


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir(parents=True)
    _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", path)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def read_only(src: Path, path: Path):
    path.mkdir(parents=True)
    _mount("--bind", src, path)
    try:
        _mount("-o", "remount,bind,ro", path)
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder: Path) -> None:
    """Take every free byte of the file system under `folder`."""
    with open(folder / "filler", "wb") as f:
        with contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def small_sweep(root: Path) -> Path:
    write_sweep(
        open_store(root),
        "s",
        sizes={"gatr": [2000, 9000], "transformer": [3000, 20000]},
        steps=[200, 800],
        trajs=[128],
    )
    return root


def assert_one_line(rc, err, *needles):
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_a_read_only_store_serves_readers_and_writers_refuse_before_ray(tmp_path, capsys):
    src = small_sweep(tmp_path / "src")
    before = snapshot(src)
    with read_only(src, tmp_path / "ro") as ro:
        for argv in (("status", "s"), ("best", "s"), ("query", "s", "--final"), ("store", "check")):
            rc, out, err = run_cli(capsys, *argv, "--store", ro)
            assert rc == 0, err
        rc, out, err = run_cli(
            capsys,
            "analyze",
            "s",
            "--store",
            ro,
            "--out",
            tmp_path / "elsewhere",
            "--bootstrap",
            "8",
            "--workers",
            "1",
            "--no-png",
        )
        assert rc == 0 and (tmp_path / "elsewhere" / "fits.json").exists(), err
        # the default --out is inside the store: refused in one line naming it
        rc, out, err = run_cli(
            capsys, "analyze", "s", "--store", ro, "--bootstrap", "8", "--workers", "1", "--no-png"
        )
        assert_one_line(rc, err, "Read-only file system", str(ro))
        spec = tmp_path / "tiny.yaml"
        spec.write_text(yaml.safe_dump(tiny_sweep_dict("s2")))
        env = {**os.environ, "RAY_ADDRESS": ""}
        r = subprocess.run(
            [sys.executable, "-m", "equisweep.cli", "run", str(spec), "--store", str(ro)],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )
        assert_one_line(r.returncode, r.stderr, "not writable")
        assert "Started a local Ray instance" not in r.stdout + r.stderr
    assert snapshot(src) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_a_full_disk_under_out_and_output_leaves_no_partial_file(tmp_path, capsys):
    store = small_sweep(tmp_path / "store")
    before = snapshot(store)
    with tmpfs(tmp_path / "full", "256k") as full:
        fill(full)
        rc, out, err = run_cli(
            capsys,
            "analyze",
            "s",
            "--store",
            store,
            "--out",
            full / "rep",
            "--bootstrap",
            "8",
            "--workers",
            "1",
            "--no-png",
        )
        # A full disk shows only when the report is written, after the fitting: its progress
        # lines come first, then one error line.
        err = "\n".join(ln for ln in err.splitlines() if not ln.startswith("analyze s: "))
        assert_one_line(rc, err, "No space left on device", str(full / "rep"))
        for fmt in ("json", "csv", "parquet"):
            rc, out, err = run_cli(
                capsys,
                "query",
                "s",
                "--store",
                store,
                "--trials",
                "--format",
                fmt,
                "--output",
                full / f"q.{fmt}",
            )
            assert_one_line(rc, err, "No space left on device", f"q.{fmt}")
        assert sorted(p.name for p in full.iterdir()) == ["filler"]  # nothing half-written
    assert snapshot(store) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")
def test_a_full_store_loses_nothing_and_takes_the_rows_once_space_is_freed(tmp_path):
    with tmpfs(tmp_path / "disk", "1m") as disk:
        root = small_sweep(disk / "store")
        store = open_store(root)
        trials, metrics = store.trials("s").num_rows, store.metrics("s").num_rows
        fill(disk)
        row = {
            "family": "gatr",
            "size": {"n": 1},
            "n_params": 1,
            "flops_per_step": 1.0,
            "steps": 1,
            "train_trajectories": 1,
            "augment": False,
            "seed": 0,
            "attempt": 1,
            "status": "finished",
            "config": {"pad": "x" * 4096},
        }
        with pytest.raises(OSError):
            with store.writer("s") as w:
                for i in range(64):
                    w.add_trial({**row, "key": f"late-{i}"})
        again = open_store(root)
        assert again.trials("s").num_rows == trials and again.metrics("s").num_rows == metrics
        leftovers = [p for p in root.rglob("*") if p.name.startswith(".") or "tmp" in p.name]
        assert not leftovers, leftovers
        (disk / "filler").unlink()
        with again.writer("s") as w:
            for i in range(64):
                w.add_trial({**row, "key": f"late-{i}"})
        assert open_store(root).trials("s").num_rows == trials + 64
