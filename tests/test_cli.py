"""One CLI convention (DESIGN §9): every option has help, one --store, one message for an
unknown sweep, and a closed pipe ends a command quietly."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from equisweep.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]


def _commands(parser, prefix=()):
    """(command path, parser) for every (sub)command of the tree."""
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, prefix + (name,))


ALL = list(_commands(build_parser()))


@pytest.mark.parametrize("path,parser", ALL, ids=[" ".join(p) or "equisweep" for p, _ in ALL])
def test_every_option_and_argument_has_help(path, parser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        assert action.help and action.help.strip(), (path, action.option_strings or action.dest)


def test_one_store_option_everywhere():
    from equisweep.store.naming import STORE_HELP, STORE_METAVAR

    seen = []
    for path, parser in ALL:
        for action in parser._actions:
            if "--store" in action.option_strings:
                seen.append(path)
                assert (action.metavar, action.help) == (STORE_METAVAR, STORE_HELP), path
    # every command that reads or writes a store takes it
    for cmd in ("run", "submit", "resume", "status", "query", "best", "analyze"):
        assert (cmd,) in seen, cmd
    assert ("store", "check") in seen


def _cli(*args, env=None, **kw):
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "equisweep.cli", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=120, **kw)


@pytest.fixture(scope="module")
def small_store(tmp_path_factory):
    from equisweep.store import open_store

    root = tmp_path_factory.mktemp("cli") / "results"
    store = open_store(root)
    with store.writer("one") as w:
        for k in range(300):
            w.add_trial({"key": f"k{k:04d}", "family": "gatr", "status": "finished",
                         "attempt": 1, "steps": 10})
            w.add_metrics([{"key": f"k{k:04d}", "attempt": 1, "step": s, "val_loss": 1.0 / s}
                           for s in (1, 2)])
    return root


@pytest.mark.parametrize("command", [
    ("status", "one"), ("query", "one"), ("query", "one", "--final"), ("best", "one"),
    ("resume", "one"), ("analyze", "one"),
])
def test_unknown_sweep_is_one_message(command, small_store):
    out = _cli(command[0], "nope", *command[2:], "--store", small_store)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == (f"equisweep {command[0]}: error: no sweep 'nope' in results "
                                  f"store {small_store} (sweeps: one)")


def test_a_closed_pipe_ends_quietly(small_store, tmp_path):
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(yaml.safe_load((ROOT / "sweeps/quickstart.yaml").read_text())))
    for args in (("validate", sweep, "--json"),
                 ("query", "one", "--store", small_store, "--format", "json"),
                 ("query", "one", "--store", small_store)):
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.Popen([sys.executable, "-m", "equisweep.cli", *map(str, args)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        proc.stdout.close()  # the reader is gone before the command writes a byte (`| head`)
        err = proc.stderr.read().decode()
        rc = proc.wait(timeout=120)
        assert "Traceback" not in err and "BrokenPipe" not in err, (args, err)
        assert rc == 141 and err == "", (args, rc, err)
