"""Damaged store files, end to end through the CLI and the Python API: `equisweep store
check` names every damaged file (exit 1), readers warn, skip exactly those files and keep
returning everything else."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from equisweep.cli import main
from equisweep.store import open_store
from equisweep.store.store import DamagedFragmentWarning
from tests.reliability.storerows import write_minimal_sweep


def _newest(store: Path, kind: str, sweep: str) -> Path:
    return sorted((store / kind / f"sweep={sweep}").glob("*.parquet"))[-1]


@pytest.fixture
def damaged(tmp_path):
    store = tmp_path / "store"
    write_minimal_sweep(store, "a", keys=("k1",))
    write_minimal_sweep(store, "a", keys=("k2",))
    truncated = _newest(store, "metrics", "a")  # k2's metric rows
    write_minimal_sweep(store, "a", keys=("k3",))
    garbage = _newest(store, "trials", "a")  # k3's trial row
    write_minimal_sweep(store, "b", keys=("k4",))
    empty = _newest(store, "metrics", "b")
    data = truncated.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    garbage.write_bytes(b"\x00garbage, not parquet\xff" * 40)
    empty.write_bytes(b"")
    leftover = store / "metrics" / "sweep=a" / ".tmp-part-0-interrupted.parquet"
    leftover.write_bytes(data[:100])
    open_store(store).write_sweep_meta("b", {"name": "b"})
    meta = sorted((store / "sweeps" / "sweep=b").glob("*.json"))[-1]
    meta.write_text('{"name": "b", "spec": {')  # cut mid-write by a crashed host
    return store, {"truncated": truncated, "garbage": garbage, "empty": empty, "meta": meta,
                   "leftover": leftover}


def test_store_check_names_every_damaged_file(damaged, capsys):
    store, files = damaged
    assert main(["store", "check", "--store", str(store)]) == 1
    out = capsys.readouterr().out
    damaged_lines = [ln for ln in out.splitlines() if ln.startswith("DAMAGED ")]
    assert sorted(ln.split()[1].rstrip(":") for ln in damaged_lines) == sorted(
        str(files[k]) for k in ("truncated", "garbage", "empty", "meta"))
    assert str(files["leftover"]) in out  # reported as a leftover, not as damage
    assert "3 damaged" not in out and "4 damaged" in out


def test_readers_skip_damaged_files_and_keep_the_rest(damaged, capsys):
    store, files = damaged
    s = open_store(store)
    with pytest.warns(DamagedFragmentWarning) as caught:
        metrics = s.metrics(sweep="a").to_pylist()
        trials = s.trials(sweep="a").to_pylist()
    named = " ".join(str(w.message) for w in caught)
    assert str(files["truncated"]) in named and str(files["garbage"]) in named
    assert sorted((r["key"], r["step"]) for r in metrics) == [
        ("k1", 10), ("k1", 20), ("k3", 10), ("k3", 20)]
    assert sorted(t["key"] for t in trials) == ["k1", "k2"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DamagedFragmentWarning)
        final = {r["key"]: r for r in s.final(sweep="a").to_pylist()}
        assert final["k1"]["step"] == 20 and final["k2"]["step"] is None
        assert s.done_keys("a") == {"k1", "k2"}
        assert s.metrics(sweep="b").num_rows == 0 and len(s.trials(sweep="b")) == 1
        assert s.read_sweep_meta("b") is None or "spec" not in s.read_sweep_meta("b")

    # The CLI readers answer too (exit 0), warning on stderr about each skipped file
    # (a real process: pytest would capture the warning itself).
    out = subprocess.run([sys.executable, "-m", "equisweep.cli", "query", "a", "--store",
                          str(store), "--format", "json"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)) == 4
    assert f"skipping damaged results file {files['truncated']}" in out.stderr
    assert main(["status", "--store", str(store)]) == 0
    out, _ = capsys.readouterr()
    assert "a" in out and "b" in out
