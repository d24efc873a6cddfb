"""Node loss on a local multi-node Ray cluster (run as its own process by test_node_loss.py).

Builds a `ray.cluster_utils.Cluster` (a head with no CPUs, three worker nodes declaring
one GPU each), runs a sweep whose trials ask for `gpu: 0.5`, and once a running trial has
stored the rows of its first checkpoint, removes the worker node it runs on, ungracefully.
Prints one JSON line: what was removed and when.

Deterministic by construction, not by timing: every trial's first attempt reports its
step-20 checkpoint and then waits at a gate (the `gate@20` fault of tests/helpers/inject)
that the killer opens only after Ray has declared the removed node dead. So the sweep is
still running while the node dies, and it cannot finish (and shut Ray down) while the
killer still talks to Ray; the driver joins the killer before it shuts Ray down.

usage: python -m tests.reliability.node_loss_script STORE PORT [STACK]
(STACK: the sweep's `training.stack`; its stacks are Tune trials named after their first
member, so the killer finds them like lone trials.)
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import fault_injector
import ray
from ray.cluster_utils import Cluster

from equisweep.spec import parse_spec
from equisweep.sweep.driver import TRIAL_ACTOR, run_sweep
from tests.reliability.conftest import raw_rows, reliability_sweep

# This script sets EQUISWEEP_FAULT itself, after it started: its sitecustomize saw none, so the
# injector (importable through the PYTHONPATH tests/conftest.py set) is installed here; it
# reads the variables when the sweep plans its trials.
fault_injector.install()

TRAINABLE = TRIAL_ACTOR  # the actor class equisweep runs its trials in
DEAD_WITHIN_S = 120  # how long Ray may take to declare a removed node dead


def sweep(store: str, stack=None) -> dict:
    d = reliability_sweep("nodeloss", samples=2)
    d["families"] = {"gatr": d["families"]["gatr"]}
    if stack is not None:
        d["training"] = dict(d["training"], stack=stack)
    # Until Ray declares the lost node dead (~15 s of failed health checks) a retry may be
    # placed on it again; each such attempt costs a retry.
    d.update(resources={"cpu": 1, "gpu": 0.5}, max_concurrent=2, retries=4, store=store)
    return d


def running_trials() -> list[dict]:
    actors = ray._private.state.actors(actor_state_name="ALIVE").values()
    return [a for a in actors if TRAINABLE in a["ActorClassName"]]


def trial_key_of(pid: int, keys: list[str]) -> str | None:
    """The trial a worker runs: Tune runs it inside the trial's folder, named after it."""
    try:
        cwd = os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return None
    return next((k for k in keys if k[:8] in Path(cwd).name), None)


def kill_a_busy_node(cluster: Cluster, workers: list, store: Path, keys: list[str],
                     report: dict, gate: Path, stop: threading.Event) -> None:
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not stop.is_set():
            # A running trial whose first checkpoint's rows (steps 10 and 20) are stored;
            # it is waiting at the gate, so it is still running when its node goes.
            checkpointed = {r["key"] for r in raw_rows(store) if r["step"] >= 20}
            for actor in running_trials():
                key = trial_key_of(actor["Pid"], keys)
                node = next((n for n in workers
                             if n.node_id == actor["Address"]["NodeID"]), None)
                if key not in checkpointed or node is None:
                    continue
                report["removed_node"] = node.node_id
                report["checkpointed_trial_on_it"] = key
                report["trial_pids_on_it"] = [a["Pid"] for a in running_trials()
                                              if a["Address"]["NodeID"] == node.node_id]
                report["rows_stored_before"] = len(raw_rows(store))
                t0 = time.time()
                # Read before the removal: once the node is gone its stack is retried on a
                # survivor and a tiny sweep can end before Ray declares the node dead.
                running = not stop.is_set()
                cluster.remove_node(node, allow_graceful=False)
                # Safety net only: Ray declares a node dead after its health checks fail.
                while time.time() - t0 < DEAD_WITHIN_S and any(
                        n["NodeID"] == node.node_id and n["Alive"] for n in ray.nodes()):
                    time.sleep(0.5)
                report["node_declared_dead_after_s"] = round(time.time() - t0, 1)
                report["alive_nodes_after"] = sum(1 for n in ray.nodes() if n["Alive"])
                report["sweep_running_when_node_died"] = running
                return
            time.sleep(0.2)
        report["error"] = "no trial reached its first checkpoint in time"
    except Exception as exc:  # reported to the test, which fails on it
        report["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        gate.touch()  # let the surviving trials go on, whatever happened


def main(store: str, port: int, stack=None) -> int:
    cluster = Cluster(initialize_head=True, connect=True,
                      head_node_args={"num_cpus": 0, "gcs_server_port": port,
                                      "include_dashboard": False})
    report: dict = {"gcs_address": cluster.address}
    try:
        workers = [cluster.add_node(num_cpus=2, num_gpus=1) for _ in range(3)]
        cluster.wait_for_nodes()
        report["nodes_before"] = sum(1 for n in ray.nodes() if n["Alive"])
        report["gpus_declared"] = ray.cluster_resources().get("GPU", 0)
        spec = parse_spec(sweep(store, stack), source="nodeloss.yaml")
        keys = [t.key for t in spec.trials()]
        faults = Path(store).parent / "faults"
        gate = faults / "gate-open"
        os.environ.update(EQUISWEEP_FAULT="gate@20", EQUISWEEP_FAULT_DIR=str(faults / "fired"),
                          EQUISWEEP_FAULT_GATE=str(gate))
        stop = threading.Event()
        killer = threading.Thread(target=kill_a_busy_node,
                                  args=(cluster, workers, Path(store), keys, report, gate,
                                        stop))
        killer.start()
        try:
            summary = run_sweep(spec, store_uri=store, progress=False)
            report["summary"] = {k: summary.get(k) for k in ("to_run", "errors")}
        finally:
            # The killer is done with Ray before Ray goes: it never calls it after shutdown.
            stop.set()
            killer.join()
    finally:
        ray.shutdown()
        cluster.shutdown()
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if sys.argv[3:] else None))
