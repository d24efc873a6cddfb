"""`equisweep query`, `status` and `store check` through the real entry point."""

from __future__ import annotations

import csv
import io
import json
import re
import time

import pyarrow.parquet as pq
import pytest
from storehelp import metric, trial

from equisweep.store import open_store
from equisweep.store.where import compile_where


def test_query_table_default_and_columns(filled, run_cli, tmp_path):
    store = filled.uri
    rc, out, err = run_cli("query", "alpha", "--store", store, "--columns", "key,step,flops")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["key", "step", "flops"] and len(lines) == 11
    assert lines[1].split() == ["a", "1", "1e+06"]
    # numbers are right-aligned under their header
    assert lines[0].index("step") + 4 == lines[1].index("1") + 1


def test_query_final_and_trials_formats(filled, run_cli, tmp_path):
    store = filled.uri
    rc, out, _ = run_cli("query", "--store", store, "--final", "--format", "csv")
    assert rc == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["sweep"], r["key"], r["step"]) for r in rows] == [
        ("alpha", "a", "5"), ("alpha", "b", "2"), ("alpha", "c", "3"), ("beta", "a", "1")]
    assert rows[0]["test_loss"] == "0.05" and rows[1]["test_loss"] == ""
    rc, out, _ = run_cli("query", "alpha", "--store", store, "--trials", "--format", "json")
    data = json.loads(out)
    assert [r["status"] for r in data] == ["finished", "failed", "running"]
    assert data[0]["size"] == {"depth": 2, "width": 8}  # nested, not JSON in a string
    out_file = tmp_path / "final.parquet"
    rc, _, err = run_cli("query", "--store", store, "--final", "--format", "parquet",
                         "--output", out_file)
    assert rc == 0 and "wrote 4 rows" in err
    assert pq.read_table(out_file).num_rows == 4
    rc, _, _ = run_cli("query", "--store", store, "--output", tmp_path / "m.csv",
                       "--format", "csv")
    assert len((tmp_path / "m.csv").read_text().splitlines()) == 12


def test_query_where(filled, run_cli, tmp_path):
    store = filled.uri
    rc, out, _ = run_cli("query", "--store", store, "--final", "--format", "json",
                         "--where", "family == 'gatr' and steps >= 10 and status in "
                         "('finished', 'failed')")
    assert rc == 0 and [r["key"] for r in json.loads(out)] == ["a", "b"]
    rc, out, _ = run_cli("query", "--store", store, "--format", "json",
                         "--where", "not (step < 5) or test_loss != None")
    assert [(r["key"], r["step"]) for r in json.loads(out)] == [("a", 5)]


@pytest.mark.parametrize("expr, msg", [
    ("nope == 1", "unknown column 'nope'"),
    ("__import__('os').system('x')", "not a comparison"),
    ("step == len('x')", "only column names and literal values"),
    ("step >", "not a valid expression"),
    ("step", "cannot apply"),
    ("1 == 1", "compares two values"),
    ("step == 'x'", "cannot apply"),
    ("step in 3", "list of values"),
    ("", "empty"),
])
def test_query_bad_where_names_the_expression(filled, run_cli, tmp_path, expr, msg):
    rc, out, err = run_cli("query", "--store", filled.uri, "--where", expr)
    assert rc == 2 and out == ""
    assert msg in err and err.startswith("equisweep query: error:") and err.count("\n") == 1


def test_query_bad_input(filled, run_cli, tmp_path, monkeypatch):
    store = filled.uri
    rc, _, err = run_cli("query", "--store", store, "--format", "parquet")
    assert rc == 2 and "--format parquet needs --output" in err
    rc, _, err = run_cli("query", "--store", store, "--columns", "key,bogus")
    assert rc == 2 and "unknown column 'bogus'" in err
    rc, _, err = run_cli("query", "gamma", "--store", store)
    assert rc == 2 and "no sweep 'gamma'" in err and "alpha, beta" in err
    rc, _, err = run_cli("query", "../etc", "--store", store)
    assert rc == 2 and "invalid sweep name '../etc'" in err
    rc, _, err = run_cli("query", "--store", tmp_path / "missing")
    assert rc == 2 and f"no results store at {tmp_path / 'missing'}" in err
    rc, _, err = run_cli("query", "--store", store, "--output", tmp_path / "no" / "x.csv")
    assert rc == 2 and "does not exist" in err
    rc, _, err = run_cli("query", "--store", store, "--format", "xml")
    assert rc == 2 and "invalid choice" in err


@pytest.mark.parametrize("store_uri", ["local"], indirect=True)  # a local folder and ./results
def test_store_defaults_to_env_then_results(filled, run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("EQUISWEEP_STORE", str(tmp_path / "results"))
    rc, out, _ = run_cli("query", "--trials", "--columns", "key")
    assert rc == 0 and len(out.splitlines()) == 5
    monkeypatch.delenv("EQUISWEEP_STORE")
    monkeypatch.chdir(tmp_path)
    rc, out, _ = run_cli("status")
    assert rc == 0 and "alpha" in out
    monkeypatch.chdir(tmp_path / "results")
    rc, _, err = run_cli("status")
    assert rc == 2 and "no results store at ./results" in err


def test_status(filled, run_cli, tmp_path):
    rc, out, err = run_cli("status", "--store", filled.uri)
    assert rc == 0, err
    header, alpha, beta = out.splitlines()[:3]
    assert header.split() == ["SWEEP", "PLANNED", "PENDING", "RUNNING", "RETRYING", "FINISHED",
                              "FAILED", "DIVERGED", "INTERRUPTED", "SKIPPED", "FLOPS",
                              "PLANNED_FLOPS", "BUDGET", "USED", "ETA", "DRIVER"]
    # alpha: a reached 5e6 FLOPs, b 2e6, c 3e6 → 1e7 of a 1e8 budget. No planned count and
    # no driver heartbeat in these hand-written sweeps: those columns stay empty, and c,
    # with no heartbeat to judge by, stays running.
    cols = [m.start() for m in re.finditer(r"\S+", header)]
    assert alpha.split() == ["alpha", "1", "0", "1", "1", "0", "0", "0", "1e+07", "1e+08",
                             "10.0%"]
    assert alpha[cols[1]:cols[3]].strip() == ""  # PLANNED, PENDING unknown
    assert beta.split() == ["beta", "0", "0", "0", "0", "1", "0", "0", "7e+06", "no",
                            "budget"]
    # no val_loss anywhere: the one finished trial with a test loss stands for its variant
    assert "best so far per variant" in out and re.search(r"\nalpha\s+gatr\s+a\s", out)
    rc, out, _ = run_cli("status", "beta", "--store", filled.uri)
    assert rc == 0 and out.splitlines()[1].startswith("beta") and "alpha" not in out
    rc, _, err = run_cli("status", "nope", "--store", filled.uri)
    assert rc == 2 and "no sweep 'nope'" in err


def test_status_json_and_interrupted_trials(filled, run_cli, tmp_path):
    """A running trial whose driver's heartbeat ended (or whose pid is gone) is interrupted."""
    import os
    import socket

    from equisweep.store.heartbeat import write_beat

    rc, out, _ = run_cli("status", "alpha", "--store", filled.uri, "--json")
    (row,) = json.loads(out)
    assert (row["running"], row["interrupted"], row["driver"]) == (1, 0, None)
    now = time.time()
    beat = {"host": socket.gethostname(), "pid": os.getpid(), "started_at": now - 10,
            "beat_at": now, "interval_s": 60, "planned_trials": 5, "planned_flops": 2e7,
            "run_flops": 5e6, "state": "running"}
    write_beat(filled, "alpha", beat)
    (row,) = json.loads(run_cli("status", "alpha", "--store", filled.uri,
                                "--json")[1])
    assert (row["planned"], row["pending"], row["running"], row["driver"]) == (5, 2, 1, "alive")
    # 1e7 of 2e7 FLOPs left at the measured 5e6 FLOPs per 10 s: 20 s.
    assert row["eta_s"] == pytest.approx(20, rel=0.05)
    for gone in ({"state": "ended"}, {"pid": 2**22 + 12345}, {"beat_at": now - 1000}):
        write_beat(filled, "alpha", dict(beat, **gone))
        (row,) = json.loads(run_cli("status", "alpha", "--store", filled.uri,
                                    "--json")[1])
        assert (row["running"], row["interrupted"], row["eta_s"]) == (0, 1, None), gone
    rc, out, _ = run_cli("status", "alpha", "--store", filled.uri, "--watch",
                         "--interval", "0.01")
    assert rc == 0 and out.count("(as of ") == 1  # no live driver: one frame, then done


@pytest.mark.parametrize("meta, shown", [
    ({"budget_flops": 2e7}, "50.0%"),
    ({"spec": {"budget": {"flops": 4e7}}}, "25.0%"),
    ({"budget": 1e7}, "100.0%"),
])
def test_status_reads_the_budget_the_driver_writes(filled, run_cli, tmp_path, meta, shown):
    filled.write_sweep_meta("alpha", meta)
    rc, out, _ = run_cli("status", "alpha", "--store", filled.uri)
    assert rc == 0 and out.splitlines()[1].split()[-1] == shown


def test_json_output_is_strict_json_with_nan(store, run_cli, tmp_path):
    with store.writer("sw") as w:
        w.add_metrics([metric("k", 1, train_loss=float("nan"))])
    rc, out, _ = run_cli("query", "--store", store.uri, "--format", "json")
    assert rc == 0 and json.loads(out)[0]["train_loss"] is None and "NaN" not in out


def test_status_of_empty_store(run_cli, tmp_path):
    (tmp_path / "empty").mkdir()
    rc, out, _ = run_cli("status", "--store", tmp_path / "empty")
    assert rc == 0 and "no sweeps yet" in out


@pytest.mark.parametrize("store_uri", ["local"], indirect=True)  # damages a file on disk
def test_store_check_exit_codes(filled, run_cli, tmp_path):
    store = tmp_path / "results"
    rc, out, _ = run_cli("store", "check", "--store", store)
    assert rc == 0 and "5 good files, 0 damaged" in out
    victim = sorted((store / "metrics").rglob("part-*.parquet"))[0]
    victim.write_bytes(victim.read_bytes()[:100])
    rc, out, _ = run_cli("store", "check", "--store", store)
    assert rc == 1 and f"DAMAGED {victim.as_posix()}" in out
    rc, _, err = run_cli("store", "check", "--store", tmp_path / "missing")
    assert rc == 2 and "no results store" in err
    f = tmp_path / "file"
    f.write_text("x")
    rc, _, err = run_cli("store", "check", "--store", f)
    assert rc == 2 and f"results store {f} is a file" in err
    rc, _, err = run_cli("store")
    assert rc == 2


def test_where_compiles_to_expressions():
    expr, used = compile_where("a == 1 < b and not c in [1, None]", ["a", "b", "c"])
    assert used == {"a", "b", "c"}
    import pyarrow as pa

    t = pa.table({"a": [1, 1, 2], "b": [2, 0, 5], "c": [3, None, 3]})
    assert t.filter(expr).num_rows == 1
    assert t.filter(compile_where("a != None and -1 < a", ["a"])[0]).num_rows == 3


def test_cli_modules_import_no_pyarrow():
    import subprocess
    import sys

    code = ("import sys, equisweep.store.cli_query, equisweep.store.cli_status, "
            "equisweep.store.cli_store; print(sorted(m for m in ('pyarrow', 'numpy', 'pandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_status_trials_lists_the_trials_in_flight(filled, run_cli, tmp_path):
    """--trials: one line per running trial with node, attempt, step of steps and the latest
    val loss with its SE; the same trials read `interrupted` once their driver is gone."""
    import os
    import socket

    from equisweep.store.heartbeat import write_beat

    with filled.writer("alpha") as w:
        w.add_metrics([metric("c", 2, val_loss=0.25, val_loss_se=0.01),
                       metric("c", 7)])  # latest step has no val loss: the step-2 one shows
        w.add_trial(trial("c", family="transformer", steps=800, attempt=2, node="n7"))
    uri = filled.uri
    rc, out, err = run_cli("status", "alpha", "--store", uri, "--trials")
    assert rc == 0, err
    head, *lines = out.split("trials in flight (1):\n")[1].splitlines()
    assert head.split()[:9] == ["TRIAL", "LR", "SEED", "STATE", "NODE", "ATTEMPT", "STEP",
                                "VAL_LOSS", "FOR"]
    (line,) = lines
    assert line.startswith("transformer 8x2 d16 ")
    assert "n7" in line and " 2 " in line and "7/800" in line and "0.25 ± 0.01" in line
    assert "running" in line and line.rstrip().endswith(" c")
    now = time.time()
    write_beat(filled, "alpha", {"host": socket.gethostname(), "pid": os.getpid(),
                                 "started_at": now - 10, "beat_at": now, "interval_s": 60,
                                 "state": "ended"})
    (row,) = json.loads(run_cli("status", "alpha", "--store", uri, "--trials", "--json")[1])
    (t,) = row["in_flight"]
    assert (t["key"], t["state"], t["step"], t["steps"], t["attempt"]) == \
        ("c", "interrupted", 7, 800, 2)
    rc, out, _ = run_cli("status", "beta", "--store", uri, "--trials")
    assert rc == 0 and "no trial in flight" in out


def test_status_trials_needs_a_name(filled, run_cli, tmp_path):
    rc, out, err = run_cli("status", "--store", filled.uri, "--trials")
    assert rc == 2 and out == "" and "--trials needs a sweep NAME" in err


def test_status_watch_waits_for_a_sweep_submitted_elsewhere(run_cli, tmp_path, monkeypatch):
    """`submit` returns before the cluster's driver writes anything: `status --watch` waits
    for the sweep (within --wait) instead of exiting 2, then follows it until its driver
    ends; a sweep that never comes ends the wait with the usual one-line error."""
    import threading

    from equisweep.store import appear
    from equisweep.store.heartbeat import write_beat

    monkeypatch.setattr(appear, "POLL_S", 0.05)
    uri = tmp_path / "results"
    started = threading.Event()

    def submit_elsewhere():
        started.wait(5)
        store = open_store(uri)
        store.write_sweep_meta("late", {"name": "late", "planned_trials": 1})
        time.sleep(0.3)  # metadata before the driver's first beat and trial row
        with store.writer("late") as w:
            w.add_trial(trial("a", status="finished"))
        write_beat(store, "late", {"host": "elsewhere", "pid": 1, "started_at": time.time(),
                                   "beat_at": time.time(), "interval_s": 60, "state": "ended"})

    worker = threading.Thread(target=submit_elsewhere)
    worker.start()
    real_print = print

    def say(*a, **k):  # the first line printed is the "waiting" one: let the sweep appear
        real_print(*a, **k)
        started.set()

    monkeypatch.setattr("builtins.print", say)
    try:
        rc, out, err = run_cli("status", "late", "--store", uri, "--watch", "--interval",
                               "0.05", "--wait", "30")
    finally:
        monkeypatch.setattr("builtins.print", real_print)
        worker.join()
    assert rc == 0, err
    assert out.startswith("waiting up to 30 s for sweep late to appear")
    assert out.rstrip().splitlines()[-1].startswith("(as of ")
    assert "ended" in out.split("(as of ")[-2]  # the last frame shows the ended driver
    rc, out, err = run_cli("status", "never", "--store", uri, "--watch", "--wait", "0.2")
    assert rc == 2 and "no sweep 'never'" in err


def test_a_crashed_attempt_waiting_for_its_retry_shows_as_retrying(filled, run_cli, tmp_path):
    """Issue 20: a retry waiting for a CPU showed as FAILED. Its latest row is `retrying`:
    counted apart, listed in flight, and `interrupted` once its driver is gone."""
    with filled.writer("alpha") as w:
        w.add_trial(trial("c", family="transformer", steps=800, status="retrying",
                          error="RayActorError: the actor died unexpectedly"))
    uri = filled.uri
    (row,) = json.loads(run_cli("status", "alpha", "--store", uri, "--json", "--trials")[1])
    assert (row["running"], row["retrying"], row["failed"]) == (0, 1, 1)
    assert [(t["key"], t["state"]) for t in row["in_flight"]] == [("c", "retrying")]
    from equisweep.store.heartbeat import write_beat

    write_beat(filled, "alpha", {"host": "elsewhere", "pid": 1, "started_at": time.time(),
                                 "beat_at": time.time(), "interval_s": 60, "state": "ended"})
    (row,) = json.loads(run_cli("status", "alpha", "--store", uri, "--json")[1])
    assert (row["retrying"], row["interrupted"]) == (0, 1)
