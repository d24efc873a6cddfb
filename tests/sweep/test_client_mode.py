"""`equisweep run --address ray://HEAD:PORT` (Ray Client), against a real `ray start --head`.

Under Ray Client, Tune runs the experiment in an actor on the cluster, callbacks included, so
their trial lines, their tally and the FLOPs the heartbeat reports stayed on the head: the
user saw no trial, and `status` no spend (issue 20). They come back through a board actor
(`sweep/client_relay.py`); the dashboard URL comes back with the connection.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from equisweep.sweep.client_relay import Board, Mirror, Post
from equisweep.sweep.driver import TRIAL_ACTOR
from equisweep.sweep.progress import ProgressBar, SweepTally
from tests.conftest import free_port, ray_head
from tests.reliability.conftest import reliability_sweep

ROOT = Path(__file__).resolve().parents[2]


def _wait_for_port(port: int, proc, log: Path, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"ray start exited: {log.read_text()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"Ray Client server did not come up: {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_a_ray_client_run_shows_its_trials_dashboard_and_spend(tmp_path):
    from equisweep.store import open_store
    from equisweep.store.heartbeat import read_beat

    sweep = tmp_path / "client.yaml"
    sweep.write_text(yaml.safe_dump(reliability_sweep("client", steps=30, samples=1)))
    store, client, dash = tmp_path / "store", free_port(), free_port()
    log = tmp_path / "head.log"
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE")}
    with ray_head(f"--port={free_port()}", f"--dashboard-port={dash}", log=log,
                  client_port=client) as proc:
        _wait_for_port(client, proc, log)
        out = subprocess.run(
            [sys.executable, "-m", "equisweep.cli", "run", str(sweep), "--address",
             f"ray://127.0.0.1:{client}", "--store", str(store), "--shared-store"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
        # What the dashboard's Actors view lists (its state API, with the token).
        actors = subprocess.run(
            [sys.executable, "-m", "ray.scripts.scripts", "list", "actors", "--address",
             f"http://127.0.0.1:{dash}", "--format", "json", "--detail"],
            env=dict(env, RAY_AUTH_MODE="token"), capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    listed = json.loads(actors.stdout)
    trials = [a for a in listed if a["class_name"] == TRIAL_ACTOR]
    assert trials and not [a for a in listed if a["class_name"] == "ImplicitFunc"], listed
    assert {a.get("repr_name") for a in trials} == {"equisweep:client"}, trials
    assert f"Ray dashboard: http://127.0.0.1:{dash}" in text
    # A pipe is not a terminal: one line per trial event, as a local run writes them.
    started = re.findall(r"^\[\d\d:\d\d:\d\d\] started (\S+)$", text, re.M)
    finished = re.findall(r"^\[\d\d:\d\d:\d\d\] finished (\S+) on \S+: val [\d.e+-]+ ± ", text,
                          re.M)
    assert len(started) == 2 and sorted(started) == sorted(finished), text[-3000:]
    assert re.search(r"sweep client: 2/2 trials ended \| run 0 \| done 2 \| failed 0", text)
    # The driver's last heartbeat carries the cluster's tally: the spend the store records.
    s = open_store(str(store))
    beat = read_beat(s, "client")
    assert beat["state"] == "ended"
    assert beat["run_flops"] == pytest.approx(s.flops_spent("client")["client"], rel=1e-9)
    assert beat["run_flops"] > 0


def test_the_mirror_shows_what_the_cluster_posts(ray_session, tmp_path):
    """Post (on the cluster) and Mirror (here) through a real Board actor: counts, best loss
    and lines arrive, the bar advances by the trials that ended, and a throttled post is
    sent by the next event."""
    import io

    remote, here = SweepTally(3), SweepTally(3)
    board = Board.remote()
    stream = io.StringIO()
    class Lines:  # what Post needs of TrialLines: its stream and clock, set on the cluster
        stream = clock = None

    post = Post(board, remote, lines=Lines(), every_s=3600)
    post.setup()
    post.lines.stream.write("[12:00:00] started a\n")
    screen = io.StringIO()
    bar = ProgressBar(here, "s", stream=screen)
    mirror = Mirror(board, here, bar=bar, stream=stream)
    remote.running = {"a", "b"}
    post._post(force=True)
    mirror.poll()
    assert here.running == {"a", "b"} and mirror._shown == 0
    assert stream.getvalue() == "[12:00:00] started a\n" and post.lines.clock is not None
    remote.done, remote.best = 2, {"gatr": ("loss", 0.5)}
    remote.running = {"b"}
    remote._last = {"a": {"huge": "x" * 1000}}  # stays on the cluster
    post._post()  # throttled: nothing sent
    mirror.poll()
    assert here.done == 0
    post._post(force=True)
    mirror.poll()
    assert (here.done, here.best, here.running, here._last) == (2, {"gatr": ("loss", 0.5)},
                                                                 {"b"}, {})
    assert mirror._shown == 2 and bar._bar.n == 2
    mirror.stop()  # closing the bar draws its last state (tqdm throttles redraws before)
    assert bar._bar is None
    last = screen.getvalue().split("\r")[-1]
    assert "2/3" in last and "done 2" in last and "gatr val 0.5" in last, last
