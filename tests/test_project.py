"""Project-level promises: the README's commands are the ones CI runs, the code is lint-clean,
and the layering rules of DESIGN §2 hold (only sweep/ imports Ray, no torch in analysis/,
task/ models/ spec/ store/ never import sweep/), checked on full module paths."""

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


PACKAGE = ROOT / "equisweep"


def _module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str, root: Path = ROOT) -> bool:
    rel = Path(*name.split("."))
    return (root / rel).with_suffix(".py").is_file() or (root / rel / "__init__.py").is_file()


def imported_modules(path: Path, root: Path = ROOT) -> set[str]:
    """Every module a file imports, as a full dotted path (relative imports resolved, and
    `from pkg import mod` counted as `pkg.mod`), anywhere in the file (lazy imports too)."""
    package = _module_name(path, root)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names
                      if _is_module(f"{base}.{a.name}", root)}
    return names


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _files(part: str) -> list[Path]:
    target = ROOT / Path(*part.split("."))
    if target.with_suffix(".py").is_file():
        return [target.with_suffix(".py")]
    return sorted(target.rglob("*.py"))


# (files, forbidden module, files exempt): DESIGN §2's layering.
LAYERING = [
    ("equisweep", "ray", "equisweep.sweep"),  # only sweep/ imports Ray (train.py included)
    ("equisweep.analysis", "torch", None),
    *[(part, "equisweep.sweep", None) for part in (
        "equisweep.task", "equisweep.models", "equisweep.spec", "equisweep.store")],
    ("equisweep.train", "ray", None),
]


@pytest.mark.parametrize("part, forbidden, exempt", LAYERING)
def test_layering(part, forbidden, exempt):
    offenders = {}
    for f in _files(part):
        if exempt and _within(_module_name(f), exempt):
            continue
        bad = sorted(m for m in imported_modules(f) if _within(m, forbidden))
        if bad:
            offenders[str(f.relative_to(ROOT))] = bad
    assert not offenders


def test_import_resolution_sees_full_paths(tmp_path):
    """What the layering test relies on: relative and `from pkg import mod` imports resolve
    to the module they name (a shortened top-level name would hide `equisweep.sweep`)."""
    f = PACKAGE / "task" / "cli.py"
    names = imported_modules(f)
    assert "equisweep.task.config" in names and "equisweep.errors" in names
    assert not any(_within(n, "equisweep.sweep") for n in names)
    for folder in ("store", "sweep"):
        (tmp_path / "equisweep" / folder).mkdir(parents=True)
        (tmp_path / "equisweep" / folder / "__init__.py").write_text("")
    (tmp_path / "equisweep" / "sweep" / "ray_map.py").write_text("import ray\n")
    planted = tmp_path / "equisweep" / "store" / "planted.py"
    planted.write_text("def f():\n    from ..sweep import ray_map\n")
    assert imported_modules(planted, tmp_path) == {"equisweep.sweep", "equisweep.sweep.ray_map"}


def test_help_for_every_command():
    from equisweep.cli import COMMANDS

    for name in COMMANDS:
        out = subprocess.run([sys.executable, "-m", "equisweep.cli", name, "--help"],
                             capture_output=True, text=True)
        assert out.returncode == 0, (name, out.stderr)
        assert "usage: equisweep " + name in out.stdout


def test_the_product_has_no_fault_hooks():
    """Fault injection lives in the tests (tests/helpers/inject), which patch the product from
    outside: nothing under equisweep/ reads its variables or imports a faults module."""
    offenders = {}
    for f in _files("equisweep"):
        bad = sorted(m for m in imported_modules(f) if m.rpartition(".")[2] == "faults")
        if "EQUISWEEP_FAULT" in f.read_text():
            bad.append("EQUISWEEP_FAULT")
        if bad:
            offenders[str(f.relative_to(ROOT))] = bad
    assert not offenders
    assert not list((ROOT / "equisweep").rglob("faults.py"))
