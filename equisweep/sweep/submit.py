"""Submit a sweep to a Ray cluster as a Ray job (`equisweep run` on the head node).

The job's working_dir is a temporary folder holding just the sweep file, so nothing else
from the caller's disk is uploaded. Ray's token authentication stays on: the job client
reads the token from $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token, the same
places `ray job submit` does; the token is never put in the job's entrypoint or env.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import tempfile
import time
from pathlib import Path

from equisweep.errors import UserError

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}


def _client(address: str):
    from equisweep.sweep.session import use_token_if_available

    use_token_if_available()
    import logging

    from ray.job_submission import JobSubmissionClient

    # Ray's job SDK logs each upload and the log stream's closing at INFO on the console
    # ("Uploading package gcs://…", "WebSocket closed …"): the console is equisweep's. Its
    # modules set their own loggers to INFO, so the parent's level does not reach them.
    for name in ("ray.dashboard.modules.dashboard_sdk", "ray.dashboard.modules.job.sdk"):
        logging.getLogger(name).setLevel(logging.WARNING)

    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # connection refused, 401 without a token, bad URL ...
        msg = " ".join(str(exc).split())[:300]
        raise UserError(f"--address {address}: cannot reach the Ray job API ({msg})") from None


def submit_sweep(spec, sweep_path: str, *, address: str, store: str,
                 job_id: str | None = None, pip: list[str] | None = None) -> tuple[str, str]:
    """Submit; return (job id, dashboard URL of the job)."""
    client = _client(address)
    workdir = Path(tempfile.mkdtemp(prefix="equisweep-job-"))
    try:
        shutil.copyfile(sweep_path, workdir / "sweep.yaml")
        entrypoint = "equisweep run sweep.yaml --no-progress --store " + shlex.quote(store)
        runtime_env: dict = {"working_dir": str(workdir)}
        if pip:
            runtime_env["pip"] = list(pip)
        job_id = _submit_with_retry(
            client, address,
            entrypoint=entrypoint,
            runtime_env=runtime_env,
            submission_id=job_id or f"equisweep-{spec.name}-{int(time.time())}",
            metadata={"equisweep_sweep": spec.name},
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return job_id, f"{address.rstrip('/')}/#/jobs/{job_id}"


def _submit_with_retry(client, address: str, timeout: float = 90.0, **job) -> str:
    """A head node that just started answers 500 "no available agent ... try again later"
    until its job agent is up: wait for it rather than fail the submission."""
    deadline = time.time() + timeout
    delay = 0.5
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as exc:
            msg = " ".join(str(exc).split())
            transient = "try again later" in msg or "No available agent" in msg
            if not transient or time.time() + delay > deadline:
                raise UserError(f"--address {address}: job submission failed ({msg[:300]})")\
                    from None
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def follow(address: str, job_id: str, out=print) -> str:
    """Stream the job's logs until it ends; return its final status."""
    client = _client(address)

    async def _tail():
        async for chunk in client.tail_job_logs(job_id):
            out(chunk.rstrip("\n"))

    asyncio.run(_tail())
    status = str(client.get_job_status(job_id))
    deadline = time.time() + 30
    while status.split(".")[-1] not in TERMINAL and time.time() < deadline:
        time.sleep(0.5)
        status = str(client.get_job_status(job_id))
    return status.split(".")[-1]
