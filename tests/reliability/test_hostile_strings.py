"""Hostile strings (issue 21, class 4): family names, size and config strings, hyperparameter
names, trial keys and stored error texts holding HTML/JS, terminal escape sequences,
bidirectional overrides, newlines and very long text. report.html escapes them (and stays
self-contained: no script is loaded from anywhere), and no terminal output of `status`,
`best`, `query`, `analyze` or an error message carries a character a terminal would act
on."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from equisweep.store import open_store
from equisweep.terminal import printable
from tests.helpers.cli import run_cli

EVIL = (
    "<script>alert('x')</script>\x1b[2J\x1b]0;title\x07\u202eevil\r\nline2 "
    "<img src=x onerror=alert(1)>" + "A" * 300
)
EVIL_FAMILY = "<img src=x onerror=alert(2)>\x1b[31m\u202e"
ACTS_ON_A_TERMINAL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]"
)


def hostile_store(root, *, losses=True):
    store = open_store(root)
    with store.writer("s") as w:
        for fam in ("gatr", EVIL_FAMILY):
            for N in (1000, 4000, 16000):
                for S in (100, 300, 900):
                    key = f"{fam[:4]}-{N}-{S}\x1b[1m"
                    w.add_trial(
                        {
                            "key": key,
                            "family": fam,
                            "size": {"n": N, "note": EVIL},
                            "n_params": N,
                            "flops_per_step": 1e3 * N,
                            "steps": S,
                            "train_trajectories": 8,
                            "augment": False,
                            "seed": 0,
                            "hparams": {"lr": 1e-3, EVIL: 1.0},
                            "config": {"x": EVIL},
                            "attempt": 1,
                            "status": "finished",
                        }
                    )
                    loss = 0.01 + N**-0.3 + S**-0.5 if losses else math.nan
                    w.add_metrics(
                        [
                            {
                                "key": key,
                                "attempt": 1,
                                "step": S,
                                "samples": 8 * S,
                                "flops": 1e3 * N * S,
                                "val_loss": loss,
                                "test_loss": loss,
                            }
                        ]
                    )
        w.add_trial(
            {
                "key": "failed-1",
                "family": "gatr",
                "size": {"n": 1},
                "n_params": 1,
                "flops_per_step": 1.0,
                "steps": 1,
                "train_trajectories": 8,
                "augment": False,
                "seed": 0,
                "attempt": 1,
                "status": "failed",
                "error": EVIL,
            }
        )
    return root


def assert_terminal_safe(*texts):
    for text in texts:
        bad = ACTS_ON_A_TERMINAL.findall(text)
        assert not bad, (bad[:5], text[:300])


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags = []

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))


def test_hostile_store_strings_never_reach_a_terminal_or_the_report_raw(tmp_path, capsys):
    root = hostile_store(tmp_path / "store")
    for argv in (
        ("status", "s"),
        ("best", "s"),
        ("query", "s", "--trials"),
        ("query", "s", "--final"),
        ("query", "s", "--trials", "--columns", "all"),
    ):
        rc, out, err = run_cli(capsys, *argv, "--store", root)
        assert rc == 0, err
        assert_terminal_safe(out, err)
        assert "\\x1b" in out  # shown, escaped: the reader sees that something is there
    out_dir = tmp_path / "report"
    rc, out, err = run_cli(
        capsys,
        "analyze",
        "s",
        "--store",
        root,
        "--out",
        out_dir,
        "--bootstrap",
        "8",
        "--workers",
        "1",
        "--no-png",
    )
    assert rc == 0, err
    assert_terminal_safe(out, err)
    page = (out_dir / "report.html").read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page  # the family, shown as text
    parser = _Tags()
    parser.feed(page)
    assert not [t for t, a in parser.tags if t == "img" or any(k.startswith("on") for k in a)]
    assert not [a for t, a in parser.tags if t == "script" and "src" in a]  # self-contained


def test_an_error_message_quoting_stored_text_is_terminal_safe(tmp_path, capsys):
    root = hostile_store(tmp_path / "store", losses=False)
    rc, out, err = run_cli(capsys, "analyze", "s", "--store", root, "--out", tmp_path / "r")
    assert rc == 2 and "NaN" in err  # the message names the trials: their keys are hostile
    assert_terminal_safe(out, err)
    assert len(err.strip().splitlines()) == 1


@settings(max_examples=300, deadline=None)
@given(st.text(), st.sampled_from(["", "\n"]))
def test_printable_escapes_exactly_what_a_terminal_would_act_on(text, keep):
    shown = printable(text, keep=keep)
    assert all(ch.isprintable() or ch in keep for ch in shown)
    if text.isprintable():
        assert shown == text  # ordinary text, any script, is untouched
    # nothing is dropped: every refused character is there as its escape
    for ch in set(text):
        if not ch.isprintable() and ch not in keep:
            assert f"{ord(ch):02x}" in shown


@pytest.mark.parametrize(
    "ch,escape", [("\x1b", "\\x1b"), ("\x07", "\\x07"), ("\u202e", "\\u202e"), ("\r", "\\x0d")]
)
def test_printable_names_the_character(ch, escape):
    assert printable(f"a{ch}b") == f"a{escape}b"
