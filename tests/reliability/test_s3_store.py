"""The store on a real S3-compatible server (moto's server mode, started by the test).

A tiny sweep runs with `store: s3://BUCKET/PREFIX` on the embedded Ray, its driver is
SIGKILLed while the trials wait at a gate, and `equisweep resume` finishes it; `query`,
`query --final`, `status`, `store check` and `analyze` read the result. Credentials come
from the standard AWS environment variables only, and neither the access key nor the
secret appears in any object the sweep wrote or in any line the commands printed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from equisweep.store import open_store
from tests.reliability.s3 import ACCESS_KEY, SECRET, all_objects, moto_s3
from tests.reliability.test_no_orphans import _descendants, _wait_gone
from tests.sweep.conftest import tiny_sweep_dict

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
NAME = "ons3"


def _cli(args, env, log: Path, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "equisweep.cli", *args], cwd=ROOT,
                            env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
                            start_new_session=True, **kw)


def _run(args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "equisweep.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_sweep_on_s3_killed_resumed_and_read(tmp_path):
    with moto_s3("sweeps") as (_, bucket, aws):
        uri = f"s3://{bucket}/team/results"
        spec = tiny_sweep_dict(NAME, store=uri)  # 4 trials of 20 steps, rows at 10 and 20
        sweep_file = tmp_path / f"{NAME}.yaml"
        sweep_file.write_text(json.dumps(spec))
        faults = tmp_path / "faults"
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
        env.update(aws)
        gated = dict(env, EQUISWEEP_FAULT="gate@10", EQUISWEEP_FAULT_DIR=str(faults / "fired"),
                     EQUISWEEP_FAULT_GATE=str(faults / "open"))
        driver = _cli(["run", str(sweep_file), "--no-progress"], gated, tmp_path / "run.log")
        store = open_store(uri)
        fs, tune = store.filesystem, f"{store.root}/_tune/{NAME}"
        try:
            deadline = time.time() + 300
            while True:  # two trials wait at the gate, their rows and Tune's state stored
                assert driver.poll() is None, (tmp_path / "run.log").read_text()[-3000:]
                assert time.time() < deadline, (tmp_path / "run.log").read_text()[-3000:]
                fired = list((faults / "fired").iterdir()) if (faults / "fired").is_dir() \
                    else []
                state = [i for i in fs.get_file_info(pafs.FileSelector(tune,
                                                                        allow_not_found=True))
                         if i.base_name.startswith("experiment_state")]
                if len(fired) >= 2 and state and store.metrics(NAME).num_rows >= 2:
                    break
                time.sleep(0.5)
            procs = _descendants(driver.pid)
            os.kill(driver.pid, signal.SIGKILL)
            driver.wait(timeout=30)
        finally:
            if driver.poll() is None:
                os.killpg(driver.pid, signal.SIGKILL)
        assert not _wait_gone(procs), "Ray outlived the killed driver"
        killed_at = store.metrics(NAME).num_rows

        (faults / "open").touch()
        resume = _cli(["resume", NAME, "--store", uri], env, tmp_path / "resume.log")
        assert resume.wait(timeout=600) == 0, (tmp_path / "resume.log").read_text()[-3000:]

        query = _run(["query", NAME, "--store", uri, "--format", "json"], env)
        assert query.returncode == 0, query.stderr
        rows = json.loads(query.stdout)
        assert sorted({(r["key"], r["step"]) for r in rows}) == sorted(
            (r["key"], r["step"]) for r in rows)  # every (key, step) once
        assert len(rows) == 4 * 2 and killed_at < len(rows)
        final = _run(["query", NAME, "--final", "--store", uri, "--format", "json"], env)
        assert final.returncode == 0, final.stderr
        finals = json.loads(final.stdout)
        assert len(finals) == 4 and {r["status"] for r in finals} == {"finished"}
        assert all(r["step"] == 20 for r in finals)
        status = _run(["status", NAME, "--store", uri], env)
        assert status.returncode == 0 and NAME in status.stdout, status.stderr
        check = _run(["store", "check", "--store", uri], env)
        assert check.returncode == 0 and "0 damaged" in check.stdout, check.stdout
        analyze = _run(["analyze", NAME, "--store", uri, "--out", str(tmp_path / "report"),
                        "--bootstrap", "0", "--no-png"], env)
        assert analyze.returncode == 0, analyze.stderr
        assert (tmp_path / "report" / "report.html").is_file()

        # No credential in anything written or printed.
        objects = all_objects(bucket)
        assert any(k.startswith("team/results/metrics/") for k in objects)
        assert any(k.startswith("team/results/_tune/") for k in objects)
        printed = [(tmp_path / "run.log").read_bytes(), (tmp_path / "resume.log").read_bytes()]
        printed += [p.stdout.encode() + p.stderr.encode()
                    for p in (query, final, status, check, analyze)]
        printed += [p.read_bytes() for p in (tmp_path / "report").rglob("*") if p.is_file()]
        for secret in (SECRET.encode(), ACCESS_KEY.encode()):
            leaked = [k for k, data in objects.items() if secret in data]
            assert not leaked, f"credential written to {leaked}"
            assert not any(secret in out for out in printed), "credential printed"
