"""`equisweep submit SWEEP.yaml --address http://HEAD:8265`: run a sweep as a Ray job."""

from __future__ import annotations

import os

from equisweep.store.naming import absolute_store, add_store_argument, store_location
from equisweep.store.reach import (
    add_shared_store_argument,
    probe_writable,
    require_cluster_store,
)


def add_arguments(p) -> None:
    p.add_argument("sweep", help="sweep YAML file")
    p.add_argument("--address", default=os.environ.get("RAY_API_SERVER_ADDRESS"),
                   help="Ray dashboard/job API of the cluster, e.g. http://HEAD:8265 "
                        "(default: $RAY_API_SERVER_ADDRESS)")
    add_store_argument(p)  # as the cluster sees it: a shared path or a URI
    add_shared_store_argument(p)
    p.add_argument("--job-id", default=None, help="submission id (default: derived)")
    p.add_argument("--follow", action="store_true", help="stream the job's logs until it ends")


def run(args) -> int:
    from equisweep.errors import UserError
    from equisweep.spec import load_spec

    if not args.address:
        raise UserError("--address: required (the cluster's job API, e.g. http://HEAD:8265)")
    if "://" not in args.address:
        raise UserError(f"--address {args.address}: expected an http(s):// URL of the job API")
    spec = load_spec(args.sweep)  # a bad sweep fails here, before anything is uploaded
    # The job runs in another working directory: it gets an absolute location.
    store = absolute_store(store_location(args.store, spec.store))
    # Refused before anything is uploaded: the cluster's nodes cannot see a laptop path.
    require_cluster_store(store, shared=args.shared_store)
    probe_writable(store)  # a mistyped bucket: one line here, not a traceback on the cluster
    from equisweep.sweep.submit import follow, submit_sweep

    job_id, url = submit_sweep(spec, args.sweep, address=args.address, store=store,
                               job_id=args.job_id)
    print(f"submitted job {job_id}")
    print(f"dashboard: {url}")
    if not args.follow:
        print(f"follow with: ray job logs --follow --address {args.address} {job_id}")
        return 0
    status = follow(args.address, job_id)
    print(f"job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1
