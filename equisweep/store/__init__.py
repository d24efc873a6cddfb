"""Parquet results store: append-only, hive-partitioned, read back deduplicated.

    from equisweep.store import open_store
    store = open_store("results/")            # local path or pyarrow filesystem URI
    with store.writer("quickstart") as w:      # the driver's callback owns one per sweep
        w.add_trial({...}); w.add_metrics([{...}, ...])
    store.trials("quickstart"); store.metrics("quickstart"); store.final("quickstart")

Names are resolved lazily: the CLI imports `equisweep.store.cli_*` to build its parser and
must not pay for pyarrow there.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CheckReport": "equisweep.store.check",
    "DamagedFile": "equisweep.store.check",
    "DamagedFragmentWarning": "equisweep.store.store",
    "FINAL_SCHEMA": "equisweep.store.store",
    "METRIC_SCHEMA": "equisweep.store.schema",
    "Store": "equisweep.store.store",
    "StoreWriter": "equisweep.store.writer",
    "TRIAL_SCHEMA": "equisweep.store.schema",
    "open_store": "equisweep.store.store",
    "validate_sweep_name": "equisweep.store.naming",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'equisweep.store' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
