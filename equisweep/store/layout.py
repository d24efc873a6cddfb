"""Every place under a results store, named once: what is a URI, where each folder is.

    <store>/trials/ metrics/ baselines/ sweeps/   the tables (store/location.py lists them)
    <store>/_tune/<sweep>/                        Ray Tune's experiment folder, checkpoints
    <store>/_forks/<sweep>/<branch key>/          WSD fork checkpoints (sweep/forks.py)
    <store>/_driver/sweep=<sweep>/                the driver's lease and heartbeat
    <store>/_logs/<sweep>-<time>-<pid>.log        a run's Ray/Tune log
    <store>/reports/<sweep>/                      `analyze` output for a local store

A store is a local folder or a filesystem URI (s3://, gs://, file://). Local folders are
made absolute once, when a command starts (`naming.absolute_store`). Stdlib only: the CLI
uses it before pyarrow or Ray is imported.
"""

from __future__ import annotations

import os
from pathlib import Path

TUNE, FORKS, DRIVER, LOGS, REPORTS = "_tune", "_forks", "_driver", "_logs", "reports"


def is_uri(store) -> bool:
    """A store given as a filesystem URI (s3://, gs://, file://), not a plain path."""
    return "://" in str(store)


def is_object_store(store) -> bool:
    """A store no local process can append to or open in a browser: a URI but file://."""
    return is_uri(store) and not str(store).startswith("file://")


def local_path(store) -> Path | None:
    """The absolute folder of a local store (a path or a file:// URI); None for an object
    store."""
    store = str(store)
    if is_object_store(store):
        return None
    if store.startswith("file://"):
        store = store[len("file://"):]
    return Path(store).expanduser().resolve()


def under(store, *parts: str) -> str:
    """`store/part/...` in the store's own spelling: a URI stays a URI."""
    local = None if is_uri(store) else local_path(store)
    if local is not None:
        return str(local.joinpath(*parts))
    return "/".join([str(store).rstrip("/"), *parts])


def tune_dir(store) -> str:
    """Tune's `storage_path`: beside the store's tables, on the same filesystem."""
    return under(store, TUNE)


def driver_dir(root: str, sweep: str) -> str:
    """A sweep's lease and heartbeat folder, under a filesystem root (store.root)."""
    return f"{root}/{DRIVER}/sweep={sweep}"


def forks_dir(root: str, sweep: str) -> str:
    return f"{root}/{FORKS}/{sweep}"


def log_file(store, name: str) -> Path | str:
    """A run's log: under `<store>/_logs/` for a local store; for an object store, the URI
    its copy goes to (sweep/console.py writes the log locally and copies it there)."""
    local = local_path(store)
    return local / LOGS / name if local is not None else under(store, LOGS, name)


def report_dir(store, sweep: str) -> str:
    """Where `analyze` writes by default: `<store>/reports/<sweep>/` for a local store,
    `./report-<sweep>/` for an object store (a browser cannot open report.html there)."""
    local = local_path(store)
    if local is None:
        return os.path.join(".", f"report-{sweep}")
    return os.path.join(str(local), REPORTS, sweep)
