"""The one store-location rule (DESIGN §9) and the one sweep-name rule, used by every command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from equisweep import cli
from equisweep.spec import SpecError, parse_spec
from equisweep.store.naming import (
    STORE_HELP,
    STORE_METAVAR,
    absolute_store,
    is_sweep_name,
    store_location,
)
from tests.sweep.conftest import tiny_sweep_dict

# The commands that never touch a results store; every other one takes the same --store.
STORELESS = {"data", "fit"}


def _leaves(parser, words=()):
    """(words, parser) of every leaf command under `parser`."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield " ".join(words), parser
        return
    for word, child in subs[0].choices.items():
        yield from _leaves(child, (*words, word))


def test_every_command_has_the_same_store_option():
    commands = [(w, p) for w, p in _leaves(cli.build_parser())
                if w.split()[0] not in STORELESS]
    assert {"validate", "run", "submit", "resume", "status", "query", "store check",
            "analyze"} <= {w for w, _ in commands}
    for words, p in commands:
        opts = [a for a in p._actions if "--store" in a.option_strings]
        assert len(opts) == 1, f"{words} has no --store"
        assert (opts[0].metavar, opts[0].help, opts[0].default) == (
            STORE_METAVAR, STORE_HELP, None), words


def test_precedence_flag_then_sweep_file_then_environment_then_results(monkeypatch):
    monkeypatch.delenv("EQUISWEEP_STORE", raising=False)
    assert store_location() == "./results"
    monkeypatch.setenv("EQUISWEEP_STORE", "env")
    assert store_location() == "env"
    assert store_location(None, "file") == "file"
    assert store_location("flag", "file") == "flag"


def test_spec_store_follows_the_rule(monkeypatch):
    monkeypatch.setenv("EQUISWEEP_STORE", "env")
    assert parse_spec(tiny_sweep_dict() | {"store": "file"}).store == "file"
    data = tiny_sweep_dict()
    data.pop("store", None)
    assert parse_spec(data).store == "env"
    monkeypatch.delenv("EQUISWEEP_STORE")
    assert parse_spec(data).store == "./results"


@pytest.mark.parametrize("flag, expected", [(None, "file"), ("flag", "flag")])
def test_validate_shows_the_store_run_would_use(flag, expected, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EQUISWEEP_STORE", "env")
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(tiny_sweep_dict() | {"store": "file"}))  # JSON is YAML
    argv = ["validate", str(path), "--json"] + (["--store", flag] if flag else [])
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["store"] == expected


def test_absolute_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_store("results") == str(tmp_path.resolve() / "results")
    assert Path(absolute_store("~/x")).is_absolute()
    assert absolute_store("s3://bucket/prefix") == "s3://bucket/prefix"


@given(st.text(max_size=140))
def test_spec_and_store_share_the_sweep_name_rule(name):
    """A name the spec accepts is one the store accepts, and the other way round."""
    try:
        parse_spec(tiny_sweep_dict() | {"name": name})
        spec_ok = True
    except SpecError as exc:
        spec_ok = not any(p.startswith("name:") for p in exc.problems)
    assert spec_ok == is_sweep_name(name)
