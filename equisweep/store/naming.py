"""Where a sweep's results go: the sweep-name rule and the store-location rule (DESIGN §9).

Stdlib only, so the CLI's parsers and the spec use it without importing pyarrow.
"""

from __future__ import annotations

import os
import re

from equisweep.errors import UserError

# A sweep name becomes a folder name in the store, so it must not be able to leave it.
SWEEP_NAME_RULE = (
    "must match [A-Za-z0-9][A-Za-z0-9_.-]* (letters, digits, '_', '.', '-'; no '/', no '..'; "
    "at most 128 characters)"
)
_SWEEP_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

DEFAULT_STORE = "./results"
STORE_METAVAR = "STORE"
STORE_HELP = (
    "results store: a local path or a pyarrow filesystem URI (s3://, gs://); default: the "
    "sweep file's `store:` where there is one, else $EQUISWEEP_STORE, else ./results"
)


def is_sweep_name(name: object) -> bool:
    return (isinstance(name, str) and len(name) <= 128 and ".." not in name
            and _SWEEP_RE.fullmatch(name) is not None)


def validate_sweep_name(name: object) -> str:
    """`name`, or UserError saying the rule."""
    if not is_sweep_name(name):
        raise UserError(f"invalid sweep name {name!r}: {SWEEP_NAME_RULE}")
    return name


def store_location(flag: str | None = None, sweep_store: str | None = None) -> str:
    """The store a command uses: the `--store` flag, else the sweep file's `store:` (for
    commands that read one), else `$EQUISWEEP_STORE`, else `./results`."""
    return flag or sweep_store or os.environ.get("EQUISWEEP_STORE") or DEFAULT_STORE


def absolute_store(uri: str) -> str:
    """A local store as an absolute path (URIs unchanged): a sweep resolves its store once,
    when it starts, so Ray workers and jobs in other folders write to the same place."""
    from equisweep.store.layout import is_uri, local_path

    return uri if is_uri(uri) else str(local_path(uri))


def add_store_argument(parser) -> None:
    """The one `--store` option of every command."""
    parser.add_argument("--store", metavar=STORE_METAVAR, default=None, help=STORE_HELP)
