"""The store's S3 server goes down mid-sweep and comes back (issue 21, class 3).

Everything reaches moto (server mode) through a TCP proxy in its own process
(`tcp_proxy.py`); the outage is that process SIGKILLed: new connections are refused and
open ones reset, as when an S3 endpoint's server dies. (SIGSTOP would model a hung server
instead, and a restarted moto would come back empty: its buckets live in memory.) Both
trials wait at a gate with rows 10 and 20 stored when the proxy dies. Then:
readers (`status`, `query`) fail in seconds with one line naming the bucket and the
endpoint, exit 2; the gate opens and the driver, whose store writes now fail, ends with one
line, exit 2; the proxy restarts on the same port and `equisweep resume` finishes every
trial exactly once, bit-identical to an uninterrupted run. The secret access key is in no
object of the bucket, no output and no log.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.dataset as pads
import pytest

from equisweep.spec import parse_spec
from equisweep.store import open_store
from tests.conftest import free_port
from tests.reliability.conftest import reliability_sweep, write_yaml
from tests.reliability.helpers import assert_curve_matches, reference_rows
from tests.reliability.s3 import SECRET, all_objects, moto_s3

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
NAME = "outage"


def _proxy(listen: int, target: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("tcp_proxy.py")),
                             str(listen), str(target)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"  # listening
    return proc


def _cli(args, env, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "equisweep.cli", *args], cwd=ROOT, env=env,
                            stdout=open(log, "wb"), stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def test_s3_down_mid_sweep_then_back(tmp_path):
    with moto_s3("outage-bucket") as (endpoint, bucket, aws):
        uri = f"s3://{bucket}/team"
        spec_dict = reliability_sweep(NAME, steps=40, samples=1)
        sweep_file = write_yaml(tmp_path / f"{NAME}.yaml", dict(spec_dict, store=uri))
        spec = parse_spec(dict(spec_dict, store=uri), source="x.yaml")
        keys = sorted(t.key for t in spec.trials())
        port = free_port()
        proxy = _proxy(port, int(endpoint.rsplit(":", 1)[1]))
        env = {k: v for k, v in os.environ.items()
               if k != "RAY_ADDRESS" and not k.startswith("EQUISWEEP_FAULT")}
        env.update(aws, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")  # through the proxy
        markers, gate = tmp_path / "markers", tmp_path / "gate"
        gated = dict(env, EQUISWEEP_FAULT="gate@20", EQUISWEEP_FAULT_DIR=str(markers),
                     EQUISWEEP_FAULT_GATE=str(gate))
        store = open_store(uri)  # the test's own view: moto directly, never down
        outputs = []
        run = _cli(["run", str(sweep_file), "--no-progress"], gated, tmp_path / "run.log")
        try:
            deadline = time.time() + 300
            while True:  # both trials at the gate, their step-20 rows stored
                assert run.poll() is None, run.stderr.read()
                assert time.time() < deadline, (tmp_path / "run.log").read_text()[-3000:]
                held = {(r["key"], r["step"]) for r in store.metrics(NAME).to_pylist()}
                if all((markers / k).exists() and (k, 20) in held for k in keys):
                    break
                time.sleep(0.5)
            proxy.kill()  # the server goes down
            proxy.wait()
            for argv in (["status", NAME], ["query", NAME, "--format", "json"]):
                began = time.monotonic()
                r = subprocess.run([sys.executable, "-m", "equisweep.cli", *argv, "--store",
                                    uri], cwd=ROOT, env=env, capture_output=True, text=True,
                                   timeout=120)
                took = time.monotonic() - began
                outputs.append(r.stdout + r.stderr)
                lines = r.stderr.strip().splitlines()
                assert r.returncode == 2 and len(lines) == 1, r.stderr[-3000:]
                assert f"bucket '{bucket}'" in lines[0] and f"127.0.0.1:{port}" in lines[0]
                assert took < 30, f"{argv[0]} took {took:.1f} s to give up"
                print(f"{argv[0]} refused in {took:.1f} s: {lines[0]}")
            gate.touch()
            _, err = run.communicate(timeout=300)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
        outputs.append(err)
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith("[")]
        assert run.returncode == 2 and len(lines) == 1 and "Traceback" not in err, err[-3000:]
        assert f"cannot write the results store {uri}" in lines[0], lines
        assert f"equisweep resume {NAME} --store {uri}" in lines[0], lines

        proxy = _proxy(port, int(endpoint.rsplit(":", 1)[1]))  # the server is back
        try:
            resume = _cli(["resume", NAME, "--store", uri], env, tmp_path / "resume.log")
            _, err = resume.communicate(timeout=600)
            outputs.append(err)
            assert resume.returncode == 0, err + (tmp_path / "resume.log").read_text()[-3000:]
        finally:
            proxy.kill()
            proxy.wait()

        trials = store.trials(NAME).to_pylist()
        assert sorted(r["key"] for r in trials if r["status"] == "finished") == keys
        raw = pads.dataset(f"{store.root}/trials", filesystem=store.filesystem,
                           format="parquet", partitioning="hive").to_table().to_pylist()
        assert sorted(r["key"] for r in raw if r["status"] == "finished") == keys  # once each
        metrics = store.metrics(NAME).to_pylist()
        for t in spec.trials():
            assert_curve_matches(sorted((r for r in metrics if r["key"] == t.key),
                                        key=lambda r: r["step"]),
                                 reference_rows(t.to_dict()), t.key)

        objects = all_objects(bucket)
        logs = [line.split("Ray and Tune log: ", 1)[1].split(" (copied", 1)[0]
                for p in ("run.log", "resume.log")
                for line in (tmp_path / p).read_text().splitlines()
                if line.startswith("Ray and Tune log: ")]
        assert logs and all(Path(p).is_file() for p in logs), logs
        written = [*objects.values(), *(Path(p).read_bytes() for p in logs),
                   *((tmp_path / p).read_bytes() for p in ("run.log", "resume.log")),
                   *(o.encode() for o in outputs)]
        assert not any(SECRET.encode() in data for data in written), "secret written"
        assert any(k.startswith("team/_logs/") for k in objects), sorted(objects)[:20]
        json.dumps(outputs)  # printable
