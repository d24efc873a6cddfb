"""Wait for a sweep to appear in a store: what `status --watch` and `analyze --watch` do
right after `submit`, when the cluster has not started the sweep's driver yet.

A submitted job's driver plans, builds its dataset and writes the sweep's first metadata
tens of seconds after `submit` returns (27 s on the namespaced test cluster); a watcher
started at once would otherwise exit 2 with "no sweep". The wait is bounded: after
`timeout_s` the error is the one a command without `--watch` gives (unknown sweep, or no
store at that location).
"""

from __future__ import annotations

import time

from equisweep.errors import UserError

POLL_S = 2.0


def starting(has_beat: bool, n_trials: int, deadline: float, clock=time.monotonic) -> bool:
    """Whether a sweep that is in the store counts as still starting: its metadata landed but
    neither its driver's first heartbeat nor any trial row yet (within the wait's deadline),
    so a watcher keeps refreshing instead of ending on "no driver"."""
    return not has_beat and not n_trials and clock() < deadline


def wait_for_sweep(store_uri: str, name: str | None, timeout_s: float, say=print,
                   poll_s: float | None = None, clock=time.monotonic, sleep=time.sleep):
    """The opened store once it has sweep `name` (any sweep's store when `name` is None)."""
    from equisweep.store import open_store, validate_sweep_name
    from equisweep.store.cli_common import check_sweep

    if name is not None:
        validate_sweep_name(name)  # a bad name never appears: no point waiting for it
    poll_s = POLL_S if poll_s is None else poll_s
    deadline = clock() + timeout_s
    told = False
    while True:
        try:
            store = open_store(store_uri, must_exist=True)
            check_sweep(store, name)
            return store
        except UserError:
            if clock() >= deadline:
                raise
        if not told:
            what = f"sweep {name}" if name else "a sweep"
            say(f"waiting up to {timeout_s:g} s for {what} to appear in {store_uri} ...")
            told = True
        sleep(max(0.0, min(poll_s, deadline - clock())))
