"""Security properties: safe YAML, data-only checkpoints, names that cannot leave the store,
an embedded Ray whose dashboard is loopback-only behind token auth, token auth kept on for
cluster submission, and no secret written to the store, Tune's folder or the driver's logs.
"""

from __future__ import annotations

import os
import pickle
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from equisweep.cli import main
from equisweep.errors import UserError
from equisweep.spec import parse_spec
from equisweep.store import open_store, validate_sweep_name
from equisweep.sweep.searcher import trial_payload
from equisweep.train import CHECKPOINT_FILE, _save_checkpoint, load_checkpoint
from tests.sweep.conftest import tiny_sweep_dict

ROOT = Path(__file__).resolve().parents[1]


# -- YAML ----------------------------------------------------------------------------------
@pytest.mark.parametrize("tag", [
    "!!python/object/apply:os.system ['touch {m}']",
    "!!python/object/new:subprocess.Popen [['touch', '{m}']]",
    "!!python/name:os.system",
    "{{name: x, task: !!python/object/apply:os.system ['touch {m}']}}",
])
def test_sweep_yaml_object_tags_are_refused(tmp_path, capsys, tag):
    marker = tmp_path / "executed"
    path = tmp_path / "evil.yaml"
    path.write_text(tag.format(m=marker) + "\n")
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "object tags are refused" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()


# -- checkpoints ---------------------------------------------------------------------------
class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_checkpoints_load_weights_only(tmp_path):
    good = tmp_path / "good"
    _save_checkpoint(good, {"model": {"w": torch.arange(3.0)}, "step": 7})
    assert load_checkpoint(good)["step"] == 7  # tensors and plain data load

    marker = tmp_path / "executed"
    evil = tmp_path / "evil"
    evil.mkdir()
    torch.save({"model": _Payload(marker), "step": 1}, evil / CHECKPOINT_FILE)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(evil)
    assert not marker.exists()


# -- names ---------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(list("ab./\\-_~:%\0 ") + ["..", "/..", "../"]),
                max_size=8).map("".join))
def test_accepted_sweep_names_stay_inside_the_store(name):
    root = Path("/srv/store").resolve()
    try:
        ok = validate_sweep_name(name)
    except UserError:
        return
    for kind in ("trials", "metrics", "sweeps", "_tune"):
        target = (root / kind / f"sweep={ok}").resolve()
        assert target.parent == root / kind
        assert (root / "_tune" / ok).resolve().parent == root / "_tune"


@pytest.mark.parametrize("name", ["../x", "..", "a/../../b", "/etc", "a/b", "x\\y", ".hidden",
                                  "", "a\0b", "~root"])
def test_escaping_names_are_refused_everywhere(tmp_path, name):
    with pytest.raises(UserError):
        validate_sweep_name(name)
    with pytest.raises(UserError):
        open_store(tmp_path / "store").writer(name)
    spec = tiny_sweep_dict("ok")
    spec["name"] = name
    with pytest.raises(UserError, match="name"):
        parse_spec(spec, source="evil.yaml")
    assert not (tmp_path / "store").exists()


def test_trial_names_and_keys_are_plain_file_names(tmp_path):
    spec = parse_spec(dict(tiny_sweep_dict("ok", search={
        "method": "random", "samples_per_cell": 3,
        "params": {"lr": {"loguniform": [1e-4, 1e-2]}}}), store=str(tmp_path)), source="x")
    for trial in spec.trials():
        payload = trial_payload(trial, None)
        assert re.fullmatch(r"[0-9a-f]{16}", payload["key"])
        assert re.fullmatch(r"[A-Za-z0-9._-]+", payload["label"]) and ".." not in payload[
            "label"]


# -- cluster submission keeps token auth ---------------------------------------------------
class _FakeJobClient:
    calls: list = []

    def __init__(self, address, *args, **kwargs):
        self.address = address
        _FakeJobClient.calls.append(("init", address, args, kwargs, os.environ.get(
            "RAY_AUTH_MODE")))

    def submit_job(self, **kwargs):
        _FakeJobClient.calls.append(("submit", kwargs))
        return kwargs["submission_id"]


@pytest.fixture
def fake_job_client(monkeypatch):
    import ray.job_submission

    _FakeJobClient.calls = []
    monkeypatch.setattr(ray.job_submission, "JobSubmissionClient", _FakeJobClient)
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(var, "x")  # registers the original value for restoring
        monkeypatch.delenv(var)
    return _FakeJobClient


def test_submit_sends_the_token_and_never_ships_it(fake_job_client, monkeypatch, tmp_path):
    from equisweep.sweep.submit import submit_sweep

    secret = f"tok-{uuid.uuid4().hex}"
    monkeypatch.setenv("RAY_AUTH_TOKEN", secret)
    sweep = tmp_path / "s.yaml"
    sweep.write_text(yaml.safe_dump(tiny_sweep_dict("ok")))
    spec = parse_spec(tiny_sweep_dict("ok"), source=str(sweep))
    job_id, url = submit_sweep(spec, str(sweep), address="http://127.0.0.1:8265",
                               store=str(tmp_path / "store"))
    init = fake_job_client.calls[0]
    assert init[4] == "token"  # Ray's client attaches the token only in token mode
    submitted = fake_job_client.calls[1][1]
    assert secret not in repr(submitted)  # not in entrypoint, runtime_env or metadata
    assert "RAY_AUTH" not in repr(submitted)
    assert url.endswith(job_id)


def test_submit_respects_an_explicit_auth_mode(fake_job_client, monkeypatch, tmp_path):
    from equisweep.sweep.submit import _client

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_AUTH_TOKEN", "t")
    _client("http://127.0.0.1:8265")
    assert fake_job_client.calls[0][4] == "disabled"


def test_readme_says_how_to_pass_the_token():
    text = (ROOT / "README.md").read_text()
    assert "RAY_AUTH_TOKEN" in text and "ray get-auth-token" in text


# -- embedded Ray + secrets, end to end ----------------------------------------------------
def _tree(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ppid = int(Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(p))
    out, todo = set(), [root]
    while todo:
        pid = todo.pop()
        out.add(pid)
        todo += children.get(pid, [])
    return out


def _listening(pids: set[int]) -> dict[int, set[str]]:
    """port -> local addresses that processes in `pids` listen on (from /proc)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    ports: dict[int, set[str]] = {}
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6",
                                                             socket.AF_INET6)):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] != "0A" or f[9] not in inodes:  # 0A: LISTEN
                continue
            hex_ip, hex_port = f[1].split(":")
            raw = bytes.fromhex(hex_ip)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            ports.setdefault(int(hex_port, 16), set()).add(socket.inet_ntop(family, raw))
    return ports


@pytest.mark.slow
def test_embedded_ray_is_private_and_no_secret_reaches_store_or_logs(tmp_path):
    token = uuid.uuid4().hex + uuid.uuid4().hex  # a well-formed token for the embedded Ray
    aws = f"AWSSECRET{uuid.uuid4().hex}"
    spec = tiny_sweep_dict("secrets", search={
        "method": "random", "samples_per_cell": 1,
        "params": {"lr": {"loguniform": [1e-3, 1e-2]}}})
    spec["families"] = {"transformer": spec["families"]["transformer"]}
    spec["store"] = str(tmp_path / "store")
    sweep = tmp_path / "secrets.yaml"
    sweep.write_text(yaml.safe_dump(spec))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_TOKEN=token, AWS_SECRET_ACCESS_KEY=aws, AWS_ACCESS_KEY_ID="AKIAEXAMPLE")
    log = tmp_path / "driver.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "equisweep.cli", "run", str(sweep),
                                 "-v"], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = _wait_for_dashboard_line(proc, log)
        host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()
        assert host == "127.0.0.1"
        ports = _listening(_tree(proc.pid))
        assert ports.get(int(port)) == {"127.0.0.1"}, ports  # loopback only
        try:
            status = urllib.request.urlopen(f"{url}/api/version", timeout=10).status
        except urllib.error.HTTPError as exc:
            status = exc.code
        assert status == 401  # token auth is on for the embedded Ray too
        assert proc.wait(timeout=400) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
    assert len(open_store(tmp_path / "store").trials(sweep="secrets")) == 1
    leaks = []
    files = [p for p in (tmp_path / "store").rglob("*") if p.is_file()] + [log]
    assert any("_tune" in p.parts for p in files)  # Tune's state and results were checked
    for p in files:
        data = p.read_bytes()
        for secret in (token, aws):
            if secret.encode() in data:
                leaks.append((str(p), secret[:8]))
    assert not leaks


def _wait_for_dashboard_line(proc, log: Path, timeout: float = 240) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        m = re.search(r"Ray dashboard: (http://\S+)", log.read_text(errors="replace"))
        if m:
            return m.group(1)
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.3)
    raise AssertionError("no dashboard URL printed: " + log.read_text()[-2000:])


# --- hostile sweep files (issue 12): refused quickly, in bounded memory, in one line -----

def _hostile_files():
    from tests.test_bad_input import HOSTILE_YAML

    return HOSTILE_YAML


@pytest.mark.parametrize("name", ["alias_bomb", "deep", "deep_mapping", "huge"])
def test_hostile_yaml_is_refused_quickly_in_bounded_memory(tmp_path, capsys, name):
    import time
    import tracemalloc

    from equisweep.cli import main

    path = tmp_path / f"{name}.yaml"
    path.write_text(_hostile_files()[name])
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        code = main(["validate", str(path)])
    finally:
        elapsed = time.perf_counter() - t0
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    # Generous bounds for a loaded CI machine; the issue asks for ~2 s (measured: well under).
    assert elapsed < 10, f"{name}: refused after {elapsed:.1f} s"
    assert peak < 64 * 2**20, f"{name}: {peak / 2**20:.0f} MiB while refusing"


def test_store_uri_secrets_are_never_echoed(tmp_path, capsys):
    from equisweep.cli import main

    for uri in ("s3://AKIAEXAMPLE:hunter2@bucket/x", "s3://bucket/x?secret_key=hunter2",
                "s3://bucket/x?access_key=AKIAEXAMPLE&secret_key=hunter2"):
        assert main(["query", "--store", uri]) == 2
        err = capsys.readouterr().err
        assert "hunter2" not in err and "AKIAEXAMPLE" not in err, err
