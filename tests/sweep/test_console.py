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


def test_a_remote_stores_log_is_copied_into_its_logs_folder(tmp_path):
    """A log cannot be appended to an object, so it is written locally and copied whole to
    `<store>/_logs/` while the sweep runs and once after its last line (moto's S3 server)."""
    import time

    import boto3

    from equisweep.sweep.console import log_mirror
    from tests.reliability.s3 import moto_s3

    with moto_s3("logs-bucket"):
        store = "s3://logs-bucket/study"
        path = tmp_path / "local.log"
        mirror = log_mirror(store, path)
        assert mirror == "s3://logs-bucket/study/_logs/local.log"
        assert log_mirror(str(tmp_path / "store"), path) is None  # local: already there
        s3 = boto3.client("s3")

        def copied() -> str:
            try:
                body = s3.get_object(Bucket="logs-bucket", Key="study/_logs/local.log")["Body"]
            except s3.exceptions.NoSuchKey:
                return ""
            return body.read().decode()

        with QuietConsole(path, mirror=mirror, mirror_every_s=0.05) as console:
            logging.getLogger("ray.tune").warning("first line")
            deadline = time.monotonic() + 30
            while "first line" not in copied():  # copied while the run goes on
                assert time.monotonic() < deadline, "the log was not copied while running"
                time.sleep(0.05)
            console.note("last line")
            written = path.read_text()
        assert copied().startswith(written)  # the whole log, then its last line
        assert copied().rstrip().endswith("last line")
        # The store holds the log: the local file (a head node's temp folder) is gone.
        assert not path.exists()
