"""The README runs as written: every Python block and every shell command of it is run here,
except those marked `<!-- readme-test: cluster -->` (need a Ray cluster) or
`<!-- readme-test: structural ... -->` (install, or a full quickstart sweep): their
`equisweep` commands are parsed by the real argument parser instead, and the sweep they
run is validated. The example sweep shown is the repository's sweeps/quickstart.yaml."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"(?:<!-- readme-test: (\w+)[^>]*-->\n)?```(\w*)\n(.*?)```", re.S)


def blocks(lang: str) -> list[tuple[str | None, str]]:
    return [(mark, body) for mark, la, body in BLOCK.findall(README) if la == lang]


def commands(body: str) -> list[str]:
    """Shell commands of a block: continuation lines joined, comments dropped."""
    text = body.replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def equisweep_argv(command: str) -> list[list[str]]:
    return [shlex.split(part.strip())[1:] for part in command.split("&&")
            if part.strip().startswith("equisweep ")]


def test_example_sweep_is_the_quickstart_file_verbatim():
    example = README.split("## What a sweep looks like", 1)[1]
    yaml_block = re.findall(r"```yaml\n(.*?)```", example.split("\n## ", 1)[0], re.S)[0]
    assert yaml_block == (ROOT / "sweeps" / "quickstart.yaml").read_text()


def test_quickstart_trial_count_is_the_real_one():
    quick = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    (n,) = re.findall(r"(\d+) trials", quick)
    out = subprocess.run([sys.executable, "-m", "equisweep.cli", "validate",
                          "sweeps/quickstart.yaml"], cwd=ROOT, capture_output=True, text=True,
                         env=_env(), check=True).stdout
    assert f" {n} trials" in out  # what `equisweep validate` counts


def test_every_block_is_run_or_marked():
    marks = {m for m, _, _ in BLOCK.findall(README)}
    assert marks <= {"", "cluster", "structural"}
    assert blocks("python") and [b for m, b in blocks("bash") if not m]


STRUCTURAL = [c for m, b in blocks("bash") if m for c in commands(b)]


@pytest.mark.parametrize("command", STRUCTURAL)
def test_marked_commands_parse(command):
    from equisweep.cli import build_parser

    parser = build_parser()
    for argv in equisweep_argv(command):
        parser.parse_args(argv)  # exits (2) on anything the CLI would refuse
        if argv[0] in ("run", "submit"):
            out = subprocess.run([sys.executable, "-m", "equisweep.cli", "validate", argv[1]],
                                 cwd=ROOT, capture_output=True, text=True, env=_env())
            assert out.returncode == 0, out.stderr


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("EQUISWEEP_STORE", None)
    return env


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder like a user's clone after the quickstart: sweeps/ and a results/ store with a
    'quickstart' sweep (finished trials of both families, two learning rates per cell)."""
    from equisweep.store import open_store

    base = tmp_path_factory.mktemp("readme")
    (base / "sweeps").symlink_to(ROOT / "sweeps")
    store = open_store(base / "results")
    with store.writer("quickstart") as w:
        for i, (family, width, lr) in enumerate([("gatr", 2, 5e-4), ("gatr", 2, 2e-3),
                                                 ("transformer", 8, 5e-4),
                                                 ("transformer", 8, 2e-3)]):
            key = f"k{i}"
            w.add_trial({"key": key, "family": family, "size": {"width": width, "depth": 1},
                         "n_params": 100 * width, "flops_per_step": 1e6, "steps": 100,
                         "train_trajectories": 256, "augment": family == "transformer",
                         "seed": 0, "hparams": {"lr": lr}, "config": {}, "status": "finished",
                         "attempt": 1, "node": "n"})
            w.add_metrics([{"key": key, "attempt": 1, "step": s, "flops": s * 1e6,
                            "train_loss": 1.0 / s, "val_loss": 1.0 / s + lr,
                            "test_loss": (1.0 / s + lr) if s == 100 else None}
                           for s in (50, 100)])
    return base


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len([b for m, b in blocks("python") if not m])))
def test_python_block_runs(index, workdir, monkeypatch):
    body = [b for m, b in blocks("python") if not m][index]
    monkeypatch.chdir(workdir)
    exec(compile(body, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})


RUNNABLE = [c for m, b in blocks("bash") if not m for c in commands(b)]


@pytest.mark.parametrize("command", RUNNABLE)
def test_shell_command_runs(command, workdir):
    out = subprocess.run(command, shell=True, cwd=workdir, capture_output=True, text=True,
                         env=_env(), timeout=300)
    assert out.returncode == 0, (command, out.stderr[-2000:])
    assert "Traceback" not in out.stderr and "Warning" not in out.stderr, out.stderr
    assert out.stdout.strip() or "--output" in command


# Repository paths the README names in backticks or links. `results/…` is the default store,
# written by running the quickstart (its report is named), so it is not in a clone.
_NAMED_PATH = re.compile(
    r"`((?:[\w.-]+/)+[\w.-]+\.(?:md|sh|yaml|yml|py|json|html|png|toml))`|\]\(([^)#:\s]+)\)")


@pytest.mark.parametrize("path", sorted({a or b for a, b in _NAMED_PATH.findall(README)}
                                         - {"results/reports/quickstart/report.html"}))
def test_every_path_the_readme_names_exists(path):
    assert (ROOT / path).exists(), f"README names {path}, which is not in the repository"
