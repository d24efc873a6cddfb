"""Pieces shared by `equisweep query`, `status` and `store check` (stdlib-only at top)."""

from __future__ import annotations

from equisweep.store.naming import add_store_argument, store_location

__all__ = ["add_store_argument", "check_sweep", "format_table", "open_for_reading",
           "store_location"]


def open_for_reading(args):
    """Open the store a read-only command names; UserError if there is none."""
    from equisweep.store import open_store

    return open_store(store_location(args.store), must_exist=True)


def check_sweep(store, name: str | None) -> None:
    """UserError unless `name` is None or a sweep the store has."""
    from equisweep.errors import unknown_sweep
    from equisweep.store import validate_sweep_name

    if name is None:
        return
    validate_sweep_name(name)
    known = store.sweeps()
    if name not in known:
        raise unknown_sweep(name, store.uri, known)


def _cell(value, width: int = 40) -> str:
    import datetime as dt

    if value is None:
        return ""
    if isinstance(value, float):
        text = f"{value:.6g}"
    elif isinstance(value, dt.datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
    else:
        text = str(value)
    from equisweep.terminal import printable

    text = printable(" ".join(text.split()))  # a stored text never acts on the terminal
    return text if len(text) <= width else text[: width - 1] + "…"


def format_table(table, max_width: int = 40, right=()) -> str:
    """An aligned text table of a pyarrow Table (numbers and `right` columns right-aligned)."""
    import pyarrow as pa

    names = table.column_names
    cols = [[_cell(v, max_width) for v in table.column(n).to_pylist()] for n in names]
    numeric = [
        pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or f.name in right
        for f in table.schema
    ]
    widths = [max([len(n)] + [len(c) for c in col]) for n, col in zip(names, cols)]
    lines = []
    header = [n.rjust(w) if num else n.ljust(w) for n, w, num in zip(names, widths, numeric)]
    lines.append("  ".join(header).rstrip())
    for i in range(table.num_rows):
        row = [col[i].rjust(w) if num else col[i].ljust(w)
               for col, w, num in zip(cols, widths, numeric)]
        lines.append("  ".join(row).rstrip())
    return "\n".join(lines)
