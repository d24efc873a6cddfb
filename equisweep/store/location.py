"""Where a store lives: URI → pyarrow filesystem + root, fragment listing, atomic writes.

Every file is written under a name starting with '.' and then renamed, so a reader (ours,
pandas, DuckDB — they all skip hidden names) never sees a half-written fragment. Names carry
a zero-padded write-order number and a uuid: writers never share a file, so any number of
them can write into one store at once.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pyarrow.fs as pafs

from equisweep.errors import UserError
from equisweep.store.layout import is_uri
from equisweep.store.naming import validate_sweep_name

KINDS = ("trials", "metrics", "baselines", "sweeps")

_clock_lock = threading.Lock()
_last_ns = 0


def next_seq(count: int = 1) -> int:
    """First of `count` strictly increasing write-order numbers (ns since the epoch)."""
    global _last_ns
    with _clock_lock:
        first = max(time.time_ns(), _last_ns + 1)
        _last_ns = first + count - 1
        return first


# Query parameters of pyarrow's S3/GCS URIs that carry secrets.
_SECRET_PARAMS = {"access_key", "secret_key", "session_token", "access_token",
                  "credentials", "credential_token"}
_BUCKET_SCHEMES = {"s3", "gs", "gcs"}


def check_uri(uri: str) -> None:
    """Refuse a store URI that names no bucket or carries credentials.

    Credentials come from the environment (AWS_ACCESS_KEY_ID, ... as boto3 and pyarrow
    read them), never from the URI: a URI is recorded in the store's metadata and shown
    in logs, so a secret inside it would be written out. The message never repeats it.
    """
    parsed = urlsplit(uri)
    scheme = parsed.scheme.lower()
    shown = f"{scheme}://{parsed.hostname or ''}{parsed.path}"
    if parsed.username or parsed.password:
        raise UserError(f"store URI {shown}: credentials in the URI are refused; set them "
                        "in the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)")
    secret = sorted({k.lower() for k in parse_qs(parsed.query)} & _SECRET_PARAMS)
    if secret:
        raise UserError(f"store URI {shown}: {', '.join(secret)} in the URI is refused; set "
                        "credentials in the environment (AWS_ACCESS_KEY_ID, ...)")
    if scheme in _BUCKET_SCHEMES and not parsed.netloc:
        raise UserError(f"store URI {uri!r} names no bucket: use {scheme}://BUCKET/PREFIX")


def resolve(uri, filesystem: pafs.FileSystem | None = None) -> tuple[pafs.FileSystem, str]:
    """Local path or pyarrow filesystem URI → (filesystem, root path without trailing '/')."""
    if isinstance(uri, os.PathLike):
        uri = os.fspath(uri)
    if not isinstance(uri, str) or not uri.strip():
        raise UserError(f"store location must be a path or URI, got {uri!r}")
    if filesystem is not None:
        return filesystem, uri.rstrip("/") or "/"
    if is_uri(uri):
        check_uri(uri)
    else:
        return pafs.LocalFileSystem(), os.path.abspath(os.path.expanduser(uri))
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError/... depending on scheme
        raise UserError(f"store URI not understood: {uri} ({' '.join(str(exc).split())})") from exc
    return fs, path.rstrip("/") or "/"


def file_type(fs: pafs.FileSystem, path: str) -> pafs.FileType:
    return fs.get_file_info(path).type


@dataclass(frozen=True)
class Fragment:
    sweep: str
    path: str

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def is_hidden(name: str) -> bool:
    return name.startswith((".", "_"))


TMP_PREFIX = ".tmp-"


def list_files(fs, root: str, kind: str, sweep: str | None, suffix: str, temp=False):
    """Fragments of one kind, oldest first. `temp=True` lists leftover temp files instead."""
    base = f"{root}/{kind}"
    if sweep is not None:
        base = f"{base}/sweep={validate_sweep_name(sweep)}"
    try:
        infos = fs.get_file_info(pafs.FileSelector(base, allow_not_found=True, recursive=True))
    except OSError:
        return []  # not a folder, or unreadable: equisweep.store.fragments.scan reports it
    out = []
    prefix_len = len(f"{root}/{kind}/")
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        rel = info.path[prefix_len:].split("/")
        if len(rel) != 2 or not rel[0].startswith("sweep="):
            continue
        name = rel[1]
        if temp:
            if not name.startswith(TMP_PREFIX):
                continue
        elif is_hidden(name) or not name.endswith(suffix):
            continue
        sweep_name = rel[0][len("sweep="):]
        try:
            validate_sweep_name(sweep_name)
        except UserError:
            continue  # a folder somebody else put there; never ours
        out.append(Fragment(sweep_name, info.path))
    out.sort(key=lambda f: (f.name, f.sweep))
    return out


def list_sweep_dirs(fs, root: str, kind: str) -> set[str]:
    try:
        infos = fs.get_file_info(pafs.FileSelector(f"{root}/{kind}", allow_not_found=True))
    except (FileNotFoundError, NotADirectoryError):
        return set()
    names = set()
    for info in infos:
        base = info.base_name
        if info.type == pafs.FileType.Directory and base.startswith("sweep="):
            name = base[len("sweep="):]
            try:
                names.add(validate_sweep_name(name))
            except UserError:
                continue
    return names


def fresh_name(stem: str, seq: int, suffix: str) -> str:
    return f"{stem}-{seq:020d}-{uuid.uuid4().hex}{suffix}"


def atomic_write(fs, directory: str, final_name: str, write) -> str:
    """Create directory, call write(fs, tmp_path), then rename tmp → final. Returns the path."""
    fs.create_dir(directory, recursive=True)
    tmp = f"{directory}/{TMP_PREFIX}{final_name}"
    final = f"{directory}/{final_name}"
    try:
        write(fs, tmp)
        fs.move(tmp, final)
    except BaseException:
        try:
            fs.delete_file(tmp)
        except Exception:
            pass  # nothing was created, or the filesystem is gone; readers ignore it anyway
        raise
    return final
