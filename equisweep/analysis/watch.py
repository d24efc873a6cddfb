"""`equisweep analyze NAME --watch`: rewrite the report while the sweep's driver is alive.

Each round re-reads the store and rewrites fits.json and report.html atomically (see
`analyze.write_outputs`); when the driver's heartbeat says it is gone (ended, killed or
stale), one last round writes the final report and the command returns. A round that
finds nothing to analyse yet (no finished trial) says so once and waits for the next one.
"""

from __future__ import annotations

import time

from equisweep.errors import UserError


def watch(store_uri: str, name: str, out: str, every_s: float, analyze_once, say=print,
          wait_s: float = 120.0) -> int:
    """`analyze_once()` runs one analysis and returns its result; returns an exit code.
    A sweep not in the store yet (just submitted) is waited for up to `wait_s`."""
    from equisweep.store.appear import starting, wait_for_sweep
    from equisweep.store.heartbeat import driver_alive, read_beat

    store = wait_for_sweep(store_uri, name, wait_s, say=say)
    rounds, last_error = 0, None
    deadline = time.monotonic() + wait_s
    while True:
        beat = read_beat(store, name)
        alive = driver_alive(beat)
        if beat is None and starting(False, store.trials(name).num_rows, deadline):
            alive = True
        try:
            result = analyze_once()
        except UserError as err:
            if not alive:
                raise
            if str(err) != last_error:
                say(f"report not written yet: {err}")
                last_error = str(err)
        else:
            rounds += 1
            if not alive:
                say(result.summary)
                return 0
            say(f"report rewritten ({rounds}) at {time.strftime('%H:%M:%S')}: "
                f"{result.out_dir / 'report.html'}", flush=True)
        if not alive:
            return 0
        time.sleep(every_s)
