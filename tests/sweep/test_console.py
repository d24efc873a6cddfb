"""The quiet console diverts Ray's and Tune's three channels (logging, prints, warnings) to
the log file, and leaves them alone when there is no log (`-v`)."""

from __future__ import annotations

import logging
import warnings

import ray.tune  # noqa: F401  (installs Ray's own console handler, as in a sweep)

from equisweep.sweep.console import QuietConsole, log_path


def _chatter(console: QuietConsole) -> None:
    logging.getLogger("ray.tune.execution.experiment_state").warning("snapshot warning")
    logging.getLogger("ray").warning("token notice")
    with console.tune_output():
        print("Configuration for experiment")
    warnings.warn("overflow in exp", RuntimeWarning, stacklevel=1)


def test_quiet_console_sends_ray_and_tune_output_to_the_log(tmp_path, capsys):
    path = log_path(str(tmp_path / "store"), "sw")
    assert path.parent == tmp_path / "store" / "_logs" and path.name.startswith("sw-")
    with QuietConsole(path) as console:
        console.reroute()
        _chatter(console)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    logged = path.read_text()
    for line in ("snapshot warning", "token notice", "Configuration for experiment",
                 "RuntimeWarning: overflow in exp"):
        assert line in logged
    # afterwards nothing is captured any more
    assert not any(isinstance(h, logging.StreamHandler) and getattr(h, "stream", None)
                   and getattr(h.stream, "name", "") == str(path)
                   for h in logging.getLogger().handlers)


def test_without_a_log_nothing_is_diverted(capsys):
    with QuietConsole(None) as console:
        with console.tune_output():
            print("Configuration for experiment")
    assert "Configuration for experiment" in capsys.readouterr().out


def test_remote_stores_log_locally():
    assert "://" not in str(log_path("s3://bucket/prefix", "sw"))
