"""One driver per sweep: a lease in the store that `run` and `resume` take before Ray starts.

Two drivers of one sweep would both train every trial (every row twice) and race on Tune's
folder, so a driver takes the sweep's lease first and a second one is refused (exit 2,
one line naming the holder). Leases are numbered files under the sweep's driver folder,
`<store>/_driver/sweep=<name>/lease-<n>.json`; the highest number is the lease. Taking it
means creating the next number, and creation is exclusive, so of any number of drivers
racing for it exactly one wins:

- on a filesystem (local disk, NFS) the complete file is hard-linked into place, which
  fails if the name exists (the classic lock-file primitive, atomic on NFS too);
- on S3 it is a conditional put (`If-None-Match: *`, boto3), refused if the key exists;
- other object stores have no exclusive create through pyarrow: the name is checked, then
  written (a race of two drivers started within the same moment is not excluded there).

Nothing is ever deleted, so a contender can never remove a lease another just took. The
holder rewrites its own file every heartbeat interval and marks it `ended` when it ends.
A lease is taken over when it has ended or is stale: its driver ran on this host and its pid
is gone (a killed driver is seen at once), or it was not renewed for `STALE_BEATS`
intervals (`equisweep.store.heartbeat.driver_alive`, the rule `status` uses).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import uuid
from datetime import datetime, timezone

import pyarrow.fs as pafs

from equisweep.errors import UserError
from equisweep.store.heartbeat import DEFAULT_INTERVAL_S, driver_alive
from equisweep.store.layout import driver_dir
from equisweep.store.naming import validate_sweep_name

_NAME = re.compile(r"^lease-(\d{8})\.json$")
_TRIES = 5


class Taken(Exception):
    """The lease file of that number exists already (another driver created it)."""


def _folder(store, sweep: str) -> str:
    return driver_dir(store.root, validate_sweep_name(sweep))


def _interval() -> float:
    return float(os.environ.get("EQUISWEEP_HEARTBEAT_S") or DEFAULT_INTERVAL_S)


class Lease:
    """The sweep's lease, held by this process from `acquire` until `release`."""

    def __init__(self, store, sweep: str, number: int, body: dict):
        self.store, self.sweep, self.number, self.body = store, sweep, number, body
        self.path = f"{_folder(store, sweep)}/lease-{number:08d}.json"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, daemon=True,
                                        name="equisweep-lease")

    def _write(self, state: str) -> None:
        self.body = dict(self.body, state=state, beat_at=time.time())
        _overwrite(self.store, self.path, self.body)

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.body["interval_s"]):
            try:
                self._write("running")
            except OSError:
                pass  # a store hiccup: the next renewal retries; staleness allows 4 misses

    def start(self) -> Lease:
        self._thread.start()
        return self

    def release(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        try:
            self._write("ended")
        except OSError:
            pass  # then it goes stale: taken over once STALE_BEATS intervals pass

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def holder(store, sweep: str) -> tuple[int, dict | None]:
    """(number, body) of the sweep's current lease; (0, None) when there is none. A lease
    file that cannot be read is returned with body None (treated as stale)."""
    try:
        infos = store.filesystem.get_file_info(
            pafs.FileSelector(_folder(store, sweep), allow_not_found=True))
    except OSError:
        infos = []
    numbers = sorted(int(m.group(1)) for i in infos
                     if (m := _NAME.match(i.path.rsplit("/", 1)[-1])))
    if not numbers:
        return 0, None
    top = numbers[-1]
    try:
        with store.filesystem.open_input_stream(
                f"{_folder(store, sweep)}/lease-{top:08d}.json") as f:
            body = json.loads(f.read(65536).decode())
    except (OSError, ValueError, UnicodeDecodeError):
        return top, None
    return top, body if isinstance(body, dict) else None


def acquire(store, sweep: str, command: str = "run") -> Lease:
    """Take the sweep's lease (and start renewing it), or raise a one-line UserError naming
    the live driver that holds it."""
    for _ in range(_TRIES):
        number, body = holder(store, sweep)
        if body is not None and driver_alive(body):
            raise UserError(
                f"sweep {sweep!r} is already being run by another driver (host "
                f"{body.get('host')}, pid {body.get('pid')}, {body.get('command', 'run')} "
                f"since {_when(body.get('started_at'))}; lease {store.uri}/_driver/"
                f"sweep={sweep}/lease-{number:08d}.json): wait for it to end or stop it, "
                f"then `equisweep resume {sweep}`")
        mine = {"state": "running", "host": socket.gethostname(), "pid": os.getpid(),
                "token": uuid.uuid4().hex, "command": command, "started_at": time.time(),
                "beat_at": time.time(), "interval_s": _interval(), "replaces": number}
        lease = Lease(store, sweep, number + 1, mine)
        try:
            _create(store, lease.path, mine)
        except Taken:
            continue  # another driver took that number first: judge its lease
        return lease.start()
    raise UserError(f"sweep {sweep!r}: could not take the driver lease in {store.uri} "
                    f"after {_TRIES} tries (other drivers keep taking it)")


def _when(t) -> str:
    try:
        return datetime.fromtimestamp(float(t), timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return "an unknown time"


def _create(store, path: str, body: dict) -> None:
    """Create `path` with `body`, failing with Taken if it exists."""
    data = json.dumps(body, sort_keys=True).encode()
    uri = store.uri if isinstance(store.uri, str) else ""
    if isinstance(store.filesystem, pafs.LocalFileSystem):
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".lease-{uuid.uuid4().hex}")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # exclusive, and the file is complete when it appears
        except FileExistsError:
            raise Taken(path) from None
        finally:
            os.unlink(tmp)
    elif uri.lower().startswith("s3://"):
        _s3_create(uri, path, data)
    else:
        if store.filesystem.get_file_info(path).type != pafs.FileType.NotFound:
            raise Taken(path)
        _overwrite(store, path, body)


def _overwrite(store, path: str, body: dict) -> None:
    from equisweep.store import location

    folder, name = path.rsplit("/", 1)

    def write(fs, tmp):
        with fs.open_output_stream(tmp) as f:
            f.write(json.dumps(body, sort_keys=True).encode())

    location.atomic_write(store.filesystem, folder, name, write)


def _s3_create(uri: str, path: str, data: bytes) -> None:
    """A conditional put: S3 stores the object only if no object has that key."""
    from urllib.parse import parse_qs, urlsplit

    try:
        import boto3
        from botocore.exceptions import ClientError
    except ImportError as exc:  # a dependency; a broken install should say so plainly
        raise UserError(f"store {uri}: the driver lease on S3 needs boto3 ({exc})") from None
    query = {k: v[-1] for k, v in parse_qs(urlsplit(uri).query).items()}
    kwargs = {}
    if query.get("endpoint_override"):
        scheme = query.get("scheme", "https")
        endpoint = query["endpoint_override"]
        kwargs["endpoint_url"] = endpoint if "://" in endpoint else f"{scheme}://{endpoint}"
    if query.get("region"):
        kwargs["region_name"] = query["region"]
    bucket, key = path.split("/", 1)
    try:
        boto3.client("s3", **kwargs).put_object(Bucket=bucket, Key=key, Body=data,
                                                IfNoneMatch="*")
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
            raise Taken(path) from None
        raise OSError(f"store {uri}: could not write the driver lease: {code or exc}") from None
