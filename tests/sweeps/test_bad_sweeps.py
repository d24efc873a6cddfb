"""Every malformed sweep in bad/ is refused by `equisweep validate` with exit code 2 and a
one-line message naming the field its first line (`# expect: FIELD`) announces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from equisweep.cli import main

HERE = Path(__file__).parent
BAD = sorted((HERE / "bad").glob("*.yaml"))


def _expected(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name}: first line must be '# expect: FIELD'"
    return first.removeprefix("# expect: ").strip()


def test_there_are_enough_cases():
    assert len(BAD) >= 25


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_sweep_exits_2_naming_the_field(path, capsys):
    assert main(["validate", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("equisweep validate: error: ")
    assert _expected(path) in lines[0]


def test_problems_are_all_reported_at_once(tmp_path, capsys):
    text = (HERE / "good" / "tiny.yaml").read_text()
    text = text.replace("steps: [100]", "steps: [100, -5]")
    text = text.replace("retries: 1", "retries: -1")
    text = text.replace("schedule: cosine", "schedule: cosin")
    text = text.replace("gpu: 0}", "gpu: -1}")
    p = tmp_path / "many.yaml"
    p.write_text(text)
    assert main(["validate", str(p)]) == 2
    err = capsys.readouterr().err
    for field in ("grid.steps[1]", "retries", "training.schedule", "resources.gpu"):
        assert field in err
    assert "did you mean 'cosine'" in err
    assert "must be a positive integer, got -5" in err


def test_missing_file_names_it(tmp_path, capsys):
    p = tmp_path / "nope.yaml"
    assert main(["validate", str(p)]) == 2
    assert f"{p}: no such file" in capsys.readouterr().err


_RUNNER = r"""
import json, os, sys
from equisweep.cli import main
codes = {p: main(["validate", p]) for p in sys.argv[1:]}
print(json.dumps({"codes": codes, "ray": sorted(m for m in sys.modules
                                               if m == "ray" or m.startswith("ray."))}))
"""


def test_validate_starts_no_ray_and_writes_nothing(tmp_path):
    """In a fresh interpreter: every bad file exits 2, the good one 0, `ray` is never
    imported, and the working directory is left as it was."""
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "keep.txt").write_text("x")
    before = sorted(os.listdir(work))
    good = HERE / "good" / "tiny.yaml"
    paths = [str(p) for p in BAD] + [str(good)]
    env = {**os.environ, "EQUISWEEP_STORE": str(work / "results")}
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER, *paths],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["ray"] == []
    assert report["codes"].pop(str(good)) == 0
    assert set(report["codes"].values()) == {2}
    assert sorted(os.listdir(work)) == before
