"""Whether every node of a cluster can reach a store: a local path on the laptop is not on
the cluster's nodes, so a sweep sent there would fail every trial and strand its results on
the head's disk (issue 20). Stdlib only: it runs before Ray or pyarrow is imported."""

from __future__ import annotations

from equisweep.errors import UserError
from equisweep.store.layout import is_uri


def require_cluster_store(store: str, *, shared: bool, flag: str = "--store") -> str:
    """`store`, or UserError when it is a local path the user has not declared shared (NFS)."""
    if is_uri(store) or shared:
        return store
    raise UserError(
        f"{flag} {store}: a local path is not on the cluster's nodes; give a store every node "
        f"can reach ({flag} s3://BUCKET/PREFIX) or, for a path shared by all nodes (NFS), add "
        "--shared-store"
    )


def require_store_for(address: str | None, store: str, *, shared: bool) -> str:
    """`run`/`resume --address A`: a cluster's trials run on its nodes, so the store must be
    one they all reach, as for `submit`. `local` (the embedded Ray) needs nothing. Only an
    explicit `--address` is checked: inside a submitted job ($RAY_ADDRESS) `submit` did."""
    if address in (None, "local"):
        return store
    return require_cluster_store(store, shared=shared)


def add_shared_store_argument(parser) -> None:
    parser.add_argument("--shared-store", action="store_true",
                        help="the local --store path is shared by every cluster node (NFS)")


def probe_writable(store: str) -> None:
    """Write and delete one small file under `store`, or UserError naming the store: a
    mistyped bucket used to cost 32 s of Ray start-up and a 30-line traceback (issue 20)."""
    import uuid

    from equisweep.store.location import TMP_PREFIX, resolve

    fs, root = resolve(store)
    probe = f"{root}/{TMP_PREFIX}probe-{uuid.uuid4().hex}"
    try:
        if not is_uri(store):
            fs.create_dir(root, recursive=True)
        with fs.open_output_stream(probe) as out:
            out.write(b"equisweep write probe\n")
        fs.delete_file(probe)
    except Exception as exc:  # pyarrow raises OSError/ArrowInvalid/... by filesystem
        reason = " ".join(str(exc).split())[:200]
        raise UserError(f"--store {store}: cannot write there ({reason})") from exc
