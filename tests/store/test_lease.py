"""The sweep's driver lease, on a local store and on S3 (moto's server): of drivers racing
for it exactly one wins; a live holder refuses the rest in one line; an ended or stale
lease (its driver gone) is taken over, and nothing is ever deleted."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys

import pytest

from equisweep.errors import UserError
from equisweep.store import lease, open_store


def test_a_live_lease_refuses_a_second_driver_in_one_line(store_uri):
    store = open_store(store_uri)
    first = lease.acquire(store, "sw")
    try:
        with pytest.raises(UserError) as err:
            lease.acquire(store, "sw", command="resume")
        msg = str(err.value)
        assert "\n" not in msg and "'sw' is already being run" in msg
        assert f"pid {os.getpid()}" in msg and "lease-00000001.json" in msg
        lease.acquire(store, "other").release()  # another sweep of the store is free
    finally:
        first.release()
    again = lease.acquire(store, "sw")  # an ended lease is taken over
    assert again.number == 2 and again.body["replaces"] == 1
    again.release()


def test_a_dead_drivers_lease_is_taken_over(store_uri):
    store = open_store(store_uri)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    held = lease.acquire(store, "sw")
    held._stop.set()  # a driver that dies renews nothing and never marks its lease ended
    lease._overwrite(store, held.path, dict(held.body, pid=int(dead.stdout)))
    taken = lease.acquire(store, "sw")
    assert taken.number == 2
    taken.release()


def test_a_lease_not_renewed_for_four_beats_is_stale(store_uri):
    store = open_store(store_uri)
    held = lease.acquire(store, "sw")
    held._stop.set()
    lease._overwrite(store, held.path, dict(held.body, host="elsewhere",
                                            beat_at=held.body["beat_at"] - 4.5 * 10))
    taken = lease.acquire(store, "sw")
    assert taken.number == 2
    taken.release()


def _race(uri: str, env: dict, start, done, results) -> None:
    os.environ.update(env)
    store = open_store(uri)
    start.wait()
    try:
        got = lease.acquire(store, "raced")
        got._stop.set()
        results.put(("won", got.number))
    except UserError:
        results.put(("refused", None))
    done.wait()  # the winner stays alive (its lease live) until every contender has tried


def test_of_processes_racing_for_the_lease_exactly_one_wins(store_uri):
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    ctx = multiprocessing.get_context("spawn")
    n = 6
    start, done, results = ctx.Barrier(n), ctx.Barrier(n), ctx.Queue()
    procs = [ctx.Process(target=_race, args=(store_uri, env, start, done, results))
             for _ in range(n)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in range(n)]
    for p in procs:
        p.join(timeout=60)
    assert sorted(o for o, _ in outcomes) == ["refused"] * (n - 1) + ["won"]
    assert [num for o, num in outcomes if o == "won"] == [1]
    assert lease.holder(open_store(store_uri), "raced")[0] == 1  # no second file appeared


def test_creating_a_lease_file_that_exists_fails_and_keeps_the_first(store_uri):
    """The primitive itself (hard link / S3 If-None-Match): a second create of one name is
    refused however the listing looked, and the first file's content stays."""
    store = open_store(store_uri)
    path = f"{store.root}/_driver/sweep=sw/lease-00000001.json"
    lease._create(store, path, {"token": "first"})
    with pytest.raises(lease.Taken):
        lease._create(store, path, {"token": "second"})
    assert lease.holder(store, "sw") == (1, {"token": "first"})
