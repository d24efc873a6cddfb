"""Project-level promises: the README's commands are the ones CI runs, the code is lint-clean,
and the layering rules of DESIGN §2 hold (no Ray below sweep/, no torch in analysis/)."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    quick = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", quick, flags=re.S)


def test_readme_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one():
    commands = _readme_commands()
    assert len(commands) == 2
    install_and_run, install_and_test = commands
    assert "equisweep run sweeps/quickstart.yaml" in install_and_run
    assert "equisweep analyze quickstart" in install_and_run
    assert install_and_test.endswith("pytest")
    assert install_and_test in (ROOT / ".ci" / "run").read_text()
    assert (ROOT / "sweeps" / "quickstart.yaml").is_file()


def test_every_cli_command_in_the_readme_exists():
    from equisweep.cli import COMMANDS

    text = (ROOT / "README.md").read_text()
    used = set(re.findall(r"^equisweep ([a-z]+)", text, flags=re.M))
    used |= set(re.findall(r"&& equisweep ([a-z]+)", text))
    assert used and used <= set(COMMANDS), used - set(COMMANDS)


def test_ruff_is_clean():
    ruff = shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[test]' brings it)")
    out = subprocess.run([ruff, "check", str(ROOT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-4000:]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("part,forbidden", [
    ("train.py", "ray"), ("task", "ray"), ("models", "ray"), ("analysis", "torch"),
    ("store", "torch"), ("store", "ray"), ("spec.py", "ray"),
])
def test_layering(part, forbidden):
    target = ROOT / "equisweep" / part
    files = [target] if target.is_file() else sorted(target.rglob("*.py"))
    offenders = [str(f.relative_to(ROOT)) for f in files if forbidden in _imports(f)]
    assert not offenders


def test_help_for_every_command():
    from equisweep.cli import COMMANDS

    for name in COMMANDS:
        out = subprocess.run([sys.executable, "-m", "equisweep.cli", name, "--help"],
                             capture_output=True, text=True)
        assert out.returncode == 0, (name, out.stderr)
        assert "usage: equisweep " + name in out.stdout
