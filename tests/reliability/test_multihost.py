"""A real multi-host Ray cluster on one machine: a node dies mid-trial, nothing is lost.

Four hosts made of Linux namespaces (tests/reliability/netns.py): a Ray head and two Ray
worker nodes, each in its own network, mount and UTS namespace, with private /tmp, HOME
and /dev/shm and no shared filesystem; and an S3 server (moto's server mode) in a fourth
namespace that holds the store. Token auth is on (RAY_AUTH_MODE=token, one RAY_AUTH_TOKEN
for every host and the client). The test submits a WSD sweep from the root namespace with
`equisweep submit SWEEP --address http://HEAD:8265 --store s3://BUCKET/PREFIX --follow`, as
a user submits from a laptop: two tiny transformer trunks of 80 steps, each forked at step
30 into a 40-step branch.

Deterministic by construction, not by timing: each trunk's first attempt stores its step-20
rows and checkpoint and then waits at a gate (`gate@20`, equisweep.sweep.faults). The test
reads the store until a trunk's step-20 rows are in the bucket, takes the host that runs
it from its trial row's `node` column (the host name), and SIGKILLs every process in that
host's namespace by pid (`ip netns pids`: the raylet, and the Ray workers, which call setsid)
until none is left. Only then does it open the gates (a file in each host's private /tmp).

Asserts: the job succeeds; every planned trial is finished, once; the killed trunk was
retried and resumed from its checkpoint; read through the store, every trial has exactly the
steps eval_every..steps, each once, and the raw files hold no (key, step) more than twice;
Tune's experiment state and checkpoints are in the bucket.

Nothing outside the bucket. After the run, a Ray host's private /tmp and HOME may hold only:
  - what was there before the sweep was submitted (Ray's start-up: its session folder, and
    the head dashboard's forkserver socket folder `pymp-*`, left by its SIGKILL),
  - /tmp/ray/... and /tmp/_ray_lockfiles/...: Ray's own session folders (logs, sockets,
    the job's working_dir, Tune's local trial folders) and runtime-env locks,
  - an empty /tmp/torchinductor_<user>: torch makes it on import; empty, nothing cached,
  - /tmp/eqs-fault/...: this test's gate and fault markers,
  - ~/.cache/equisweep/data/...: the dataset cache,
  - on the killed host only, /tmp/equisweep-<key>-*/ of the trial it ran: that trial's
    scratch folder, which its own cleanup would have removed had the host lived.
Anything else fails the test, and so does any file in the surviving hosts' /dev/shm (read
through /proc/PID/root before teardown). The repository is not written either (bytecode is
off on the hosts; `git status` is compared).

Skipped, with the reason, where namespaces are unavailable: not root, no `ip`/`unshare`,
or the kernel refuses a namespace. Teardown kills every process it started by pid (also on
failure), deletes the namespaces and the bridge, and fails if anything of the run is left.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
import yaml

from equisweep.spec import parse_spec
from tests.reliability import netns
from tests.reliability.s3 import ACCESS_KEY, SECRET
from tests.sweep.conftest import tiny_sweep_dict

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
BUCKET, PREFIX = "sweeps", "team/store"
GATE_DIR = "/tmp/eqs-fault"  # on each host: its private /tmp
# A loaded 2-core machine (load 3-8) runs three Ray nodes here: generous, never the sync.
UP_TIMEOUT_S = 180
JOB_TIMEOUT_S = 420


def _sweep() -> dict:
    d = tiny_sweep_dict(
        "multihost",
        grid={"steps": [40, 80], "train_trajectories": [8], "seed": [0, 1]},
        search={"method": "grid", "params": {"lr": 3e-3}},
        training={"batch_size": 4, "eval_every": 5, "checkpoint_every": 10,
                  "schedule": "wsd", "cooldown": 0.25})
    d["families"] = {"transformer": {"sizes": [{"width": 8, "depth": 1}]}}
    # A retry may land on the dying node before Ray declares it dead: each costs one.
    d.update(resources={"cpu": 1}, max_concurrent=2, retries=4)
    return d


def _http_json(url: str, token: str | None = None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def _wait_for_nodes(url: str, token: str, want: int, hosts, timeout=UP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        for proc in hosts.procs:
            if proc.poll() is not None:
                raise AssertionError(f"a host process exited: {_logs(hosts)}")
        try:
            nodes = _http_json(f"{url}/api/v0/nodes?limit=100", token)["data"]["result"]
            last = nodes.get("result", nodes) if isinstance(nodes, dict) else nodes
            if sum(1 for n in last if n.get("state") == "ALIVE") >= want:
                return
        except (OSError, ValueError, KeyError) as exc:
            last = repr(exc)
        time.sleep(1)
    raise AssertionError(f"{want} Ray nodes not up in {timeout} s: {last}\n{_logs(hosts)}")


def _logs(hosts) -> str:
    return "\n".join(f"--- {h}:\n{p.read_text(errors='replace')[-1500:]}"
                     for h, p in hosts.logs.items() if p.exists())


def _s3_rows(fs, kind: str) -> list[dict]:
    import pyarrow.dataset as pads

    path = f"{BUCKET}/{PREFIX}/{kind}/sweep=multihost"
    try:
        return pads.dataset(path, filesystem=fs, format="parquet",
                            partitioning="hive").to_table().to_pylist()
    except (OSError, ValueError, FileNotFoundError):
        return []  # not written yet, or a file renamed into place while listing


def _wait_for_gated_trunk(fs, trunks: set[str], submit, log, timeout=JOB_TIMEOUT_S):
    """The first trunk whose step-20 rows are in the bucket, and the host it runs on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if submit.poll() is not None:
            raise AssertionError(f"submit ended before any trunk was gated: {submit.returncode}"
                                 f"\n{log.read_text(errors='replace')[-3000:]}")
        at20 = {r["key"] for r in _s3_rows(fs, "metrics") if r["step"] == 20} & trunks
        rows = sorted(_s3_rows(fs, "trials"), key=lambda r: r["_seq"])
        for r in rows:
            if r["key"] in at20 and r["status"] == "running" and r["node"]:
                return r["key"], r["node"].split()[0]
        time.sleep(0.5)
    raise AssertionError("no trunk stored its step-20 rows in time")


def _entries(tmp: Path, home: Path) -> set[str]:
    """Every file and folder in a host's /tmp and HOME, as that host names them."""
    out = set()
    for base, label in ((tmp, "/tmp/"), (home, "~/")):
        for dirpath, dirnames, filenames in os.walk(base):
            for name in [*dirnames, *filenames]:
                out.add(label + str((Path(dirpath) / name).relative_to(base)))
    return out


def _stray(entries: set[str], before: set[str], killed_key: str | None) -> list[str]:
    """The entries the module docstring's rule does not allow."""
    allowed = [r"/tmp/ray(/.*)?", r"/tmp/_ray_lockfiles(/.*)?", r"/tmp/torchinductor_[^/]+",
               r"/tmp/eqs-fault(/.*)?", r"~/\.cache(/equisweep(/data(/.*)?)?)?"]
    if killed_key:
        allowed.append(rf"/tmp/equisweep-{killed_key}-[^/]+(/.*)?")
    return sorted(e for e in entries - before
                  if not any(re.fullmatch(a, e) for a in allowed))


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _shm_files(pids: list[int]) -> list[str]:
    for pid in pids:
        try:
            return sorted(os.listdir(f"/proc/{pid}/root/dev/shm"))
        except OSError:
            continue
    return ["<no live process to read /dev/shm through>"]


@pytest.fixture
def hosts(tmp_path):
    reason = netns.unavailable()
    if reason:
        pytest.skip(f"multi-host test needs Linux namespaces: {reason}")
    tag = f"eqs{os.getpid() % 100000}"
    net = f"10.213.{os.getpid() % 200 + 20}"  # an unusual private /24, one per run
    h = netns.Hosts(tag, net, tmp_path / "hosts")
    try:
        h.start_bridge()
        for host in ("head", "w1", "w2", "s3"):
            h.add(host)
        yield h
    finally:
        problems = h.close()
        left = h.leftovers()
        assert not problems and not left, f"teardown left: {problems} {left}"


def test_a_node_dies_mid_trial_on_a_multihost_cluster(hosts, tmp_path, monkeypatch):
    import boto3
    from pyarrow import fs as pafs

    token = secrets.token_hex(32)
    ip = hosts.ips
    endpoint = f"http://{ip['s3']}:5000"
    aws = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": ACCESS_KEY,
           "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_EC2_METADATA_DISABLED": "true"}
    spec = parse_spec(dict(_sweep(), store=f"s3://{BUCKET}/{PREFIX}"), source="x.yaml")
    trials = {t.key: t for t in spec.trials()}
    trunks = {t.key for t in trials.values() if t.steps == 80}
    assert len(trials) == 4 and len(trunks) == 2

    # Every host starts from a clean environment, as a fresh machine would: nothing of
    # this process's (its HOME, TMPDIR, caches, a RAY_ADDRESS) leaks into the cluster.
    base = {"PATH": f"{netns.PYTHON_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                    "/sbin:/bin",
            "HOME": "/home/equisweep", "LANG": "C.UTF-8", "PYTHONPATH": str(ROOT),
            "PYTHONDONTWRITEBYTECODE": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    ray_env = {**base, **aws, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    head_env = {**ray_env, "EQUISWEEP_FAULT": "gate@20", "EQUISWEEP_FAULT_KEYS": ",".join(trunks),
                "EQUISWEEP_FAULT_DIR": f"{GATE_DIR}/fired",
                "EQUISWEEP_FAULT_GATE": f"{GATE_DIR}/open"}
    ray = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block",
           "--disable-usage-stats", "--object-store-memory=100000000"]
    git_before = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT,
                                capture_output=True, text=True).stdout

    hosts.run("s3", [sys.executable, "-m", "moto.server", "-H", ip["s3"], "-p", "5000"], base)
    hosts.run("head", [*ray, "--head", f"--node-ip-address={ip['head']}", "--port=6379",
                       "--num-cpus=0", "--dashboard-host=0.0.0.0", "--dashboard-port=8265"],
              head_env)
    for w in ("w1", "w2"):
        hosts.run(w, [*ray, f"--address={ip['head']}:6379", f"--node-ip-address={ip[w]}",
                      "--num-cpus=1"], ray_env)
    url = f"http://{ip['head']}:8265"

    deadline = time.monotonic() + UP_TIMEOUT_S
    for k, v in aws.items():  # this process reads the bucket too (boto3, pyarrow)
        monkeypatch.setenv(k, v)
    while True:  # the S3 server, then the bucket
        try:
            boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
            break
        except Exception:
            if time.monotonic() > deadline or hosts.procs[0].poll() is not None:
                raise AssertionError(f"no S3 server: {_logs(hosts)}") from None
            time.sleep(0.5)
    with pytest.raises(urllib.error.HTTPError) as anonymous:
        deadline = time.monotonic() + UP_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                _http_json(f"{url}/api/version")
            except urllib.error.HTTPError:
                raise
            except OSError:
                time.sleep(1)
    assert anonymous.value.code == 401  # token auth is on: no token, no cluster
    _wait_for_nodes(url, token, 3, hosts)

    # Ray's start-up, before any equisweep code runs on the cluster: allowed by the rule.
    before = {h: _entries(hosts.tmp(h), hosts.home(h)) for h in ("head", "w1", "w2")}
    sweep_file = tmp_path / "multihost.yaml"
    sweep_file.write_text(yaml.safe_dump(_sweep()))
    client_env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAY_")},
                  **aws, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token,
                  "PYTHONPATH": str(ROOT)}
    log = tmp_path / "submit.log"
    store_fs = pafs.S3FileSystem(endpoint_override=endpoint, scheme="http",
                                 access_key=ACCESS_KEY, secret_key=SECRET, region="us-east-1")
    with open(log, "wb") as out:
        submit = subprocess.Popen(
            [sys.executable, "-m", "equisweep.cli", "submit", str(sweep_file), "--address",
             url, "--store", f"s3://{BUCKET}/{PREFIX}", "--follow"],
            cwd=tmp_path, env=client_env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        gated, host = _wait_for_gated_trunk(store_fs, trunks, submit, log)
        victim = host.removeprefix(f"{hosts.tag}-")
        assert victim in ("w1", "w2"), host
        survivor = "w2" if victim == "w1" else "w1"
        running = {pid: _cmdline(pid) for pid in netns.netns_pids(hosts.ns(victim))}
        killed = netns.kill_all_in(hosts.ns(victim))
        # The host's raylet and the Ray worker running the trial (its own session) died.
        assert any("raylet" in c for c in running.values()), running
        assert any(c.startswith("ray::") for c in running.values()), running
        assert set(running) <= set(killed)
        for h in ("head", "w1", "w2"):  # the retry on the survivor passes its own gate
            (hosts.tmp(h) / "eqs-fault").mkdir(exist_ok=True)
            (hosts.tmp(h) / "eqs-fault" / "open").touch()
        rc = submit.wait(timeout=JOB_TIMEOUT_S)
    finally:
        if submit.poll() is None:
            os.kill(submit.pid, 9)
            submit.wait()
    followed = log.read_text(errors="replace")
    print(followed[-4000:])
    assert rc == 0 and "SUCCEEDED" in followed, followed[-4000:] + _logs(hosts)

    shm = {h: _shm_files(netns.netns_pids(hosts.ns(h))) for h in ("head", survivor)}

    # Every planned trial finished, once; the killed trunk was retried.
    history = sorted(_s3_rows(store_fs, "trials"), key=lambda r: r["_seq"])
    finished = Counter(r["key"] for r in history if r["status"] == "finished")
    assert finished == dict.fromkeys(trials, 1), [
        (r["key"][:8], r["attempt"], r["status"], r["node"], r["error"][-100:])
        for r in history]
    last = {r["key"]: r for r in history}
    assert all(last[k]["status"] == "finished" for k in trials)
    assert any(r["key"] == gated and r["status"] == "retrying" for r in history), history
    assert last[gated]["attempt"] >= 2 and last[gated]["node"].startswith(hosts.ns(survivor))

    # Metric rows: read through the store, each trial has each of its steps once.
    from equisweep.store import open_store

    store = open_store(f"s3://{BUCKET}/{PREFIX}")
    metrics = store.metrics(sweep="multihost").to_pylist()
    for key, trial in trials.items():
        steps = [r["step"] for r in metrics if r["key"] == key]
        assert steps == list(range(5, trial.steps + 1, 5)), (key[:8], steps)
    mine = [r for r in metrics if r["key"] == gated]
    # Resumed from its step-20 checkpoint, not restarted: rows up to 20 are attempt 1's.
    assert [r["attempt"] for r in mine if r["step"] <= 20] == [1, 1, 1, 1]
    assert mine[-1]["attempt"] >= 2
    raw = Counter((r["key"], r["step"]) for r in _s3_rows(store_fs, "metrics"))
    assert max(raw.values()) <= 2, raw.most_common(3)

    # Tune's experiment state and the trunks' checkpoints are in the bucket.
    keys = [o["Key"] for page in boto3.client("s3", endpoint_url=endpoint).get_paginator(
        "list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/_tune/multihost/")
        for o in page.get("Contents", [])]
    assert any("experiment_state" in k for k in keys), keys[:20]
    for key in trunks:
        assert any(key[:8] in k and "/checkpoint_" in k for k in keys), (key[:8], keys[:40])

    # Nothing written outside the bucket (the rule is in the module docstring).
    stray = {h: found for h in ("head", "w1", "w2")
             if (found := _stray(_entries(hosts.tmp(h), hosts.home(h)), before[h],
                                 gated if h == victim else None))}
    stray.update({f"{h}:/dev/shm": f for h, f in shm.items() if f})
    assert not stray, stray
    cache = [h for h in ("w1", "w2", "head")
             if (hosts.home(h) / ".cache/equisweep/data").is_dir()]
    assert cache, "no host built the dataset where the rule says it goes"
    assert subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True,
                          text=True).stdout == git_before
