"""`equisweep query`: read metric rows, trials or final rows from the results store."""

from __future__ import annotations

import os
import sys

from equisweep.store.cli_common import add_store_argument, check_sweep, open_for_reading

FORMATS = ("table", "csv", "json", "parquet")
# A terminal table of every column is unreadable; csv/json/parquet keep them all.
TABLE_COLUMNS = {
    "final": ("sweep", "key", "family", "n_params", "steps", "train_trajectories", "augment",
              "seed", "*hp", "status", "step", "flops", "wall_s", "train_loss", "val_loss",
              "test_loss", "test_loss_se", "skill"),
    "trials": ("sweep", "key", "family", "n_params", "steps", "train_trajectories", "augment",
               "seed", "*hp", "status", "attempt", "node", "error"),
    "metrics": ("sweep", "key", "attempt", "step", "samples", "epochs", "flops", "wall_s",
                "train_loss", "val_loss", "lr", "test_loss"),
    "curves": ("sweep", "key", "family", "n_params", "augment", "step", "flops", "train_loss",
               "val_loss", "lr", "test_loss"),
}
# Trial columns repeated on every curve row, so a curve can be labelled without a join.
CURVE_TRIAL_COLUMNS = ("family", "size", "n_params", "steps", "train_trajectories", "augment",
                       "seed", "hparams")


def add_arguments(parser) -> None:
    parser.add_argument("name", nargs="?", metavar="NAME", help="sweep name (default: all)")
    add_store_argument(parser)
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--final", action="store_true",
                      help="one row per trial: trial columns + last metric row + test_loss, "
                           "test_loss_se and skill (1 − test_loss / constant-velocity's)")
    what.add_argument("--trials", action="store_true",
                      help="one row per trial: its latest status row")
    what.add_argument("--curves", action="store_true",
                      help="every metric row of the trials --where selects (the filter "
                           "applies to the --final columns), with the trials' columns")
    parser.add_argument("--where", metavar="EXPR",
                        help="filter, e.g. \"equivariant and hp_lr > 1e-3 and steps >= 800\"")
    parser.add_argument("--columns", metavar="A,B",
                        help="comma-separated columns to show, or 'all' (the table format "
                             "shows a compact set by default; other formats show all)")
    parser.add_argument("--limit", type=int, metavar="N", help="show at most N rows")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="output format (default: table; parquet needs --output)")
    parser.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")


def _select(table, columns_arg: str | None, default: tuple[str, ...] | None = None):
    from equisweep.errors import UserError

    if columns_arg and columns_arg.strip() == "all":
        return table
    if not columns_arg:
        if default is None:
            return table
        return table.select([c for c in default if c in table.column_names])
    wanted = [c.strip() for c in columns_arg.split(",") if c.strip()]
    if not wanted:
        raise UserError(f"--columns {columns_arg!r} names no column")
    for c in wanted:
        if c not in table.column_names:
            raise UserError(f"--columns: unknown column {c!r} "
                            f"(columns: {', '.join(table.column_names)})")
    return table.select(wanted)


def _mapping(v) -> dict:
    """`v` if it is a mapping, else {}: stored metadata is read as untrusted input."""
    return v if isinstance(v, dict) else {}


def searched_hparams(store, name: str | None) -> set[str] | None:
    """The hyperparameters the sweep (every sweep, without a name) searches, from the spec
    the driver stored; None when no sweep has one (rows written by other tools)."""
    names = [name] if name is not None else store.sweeps()
    metas = [m for m in (store.read_sweep_meta(n) for n in names) if m]
    if not metas:
        return None
    out = set()
    for meta in metas:
        params = _mapping(_mapping(_mapping(meta.get("spec")).get("search")).get("params"))
        out |= {k for k, v in params.items() if isinstance(v, dict)}  # a number is fixed
    return out


def _expand(columns: tuple[str, ...], table, searched: set[str] | None) -> list[str]:
    """`*hp` stands for the searched hyperparameters' `hp_<name>` columns (a fixed one is the
    same in every row and would only take room); without a stored spec, those that vary."""
    from equisweep.store.schema import HP_COLUMNS

    out = []
    for c in columns:
        if c != "*hp":
            out.append(c)
        elif searched is not None:
            out += [col for col, hp in HP_COLUMNS.items() if hp in searched]
        else:
            out += [col for col in HP_COLUMNS if col in table.column_names
                    and len(set(table.column(col).to_pylist())) > 1]
    return out


def emit(table, args, columns: tuple[str, ...], store, empty_note: str = "(no rows)") -> int:
    """Show or write a table as `--columns`/`--limit`/`--format`/`--output` ask (the table
    format shows `columns` unless --columns says otherwise)."""
    default = None
    if args.format == "table" and not args.output:
        default = _expand(columns, table, searched_hparams(store, args.name))
    table = _select(table, args.columns, default)
    if getattr(args, "limit", None) is not None:
        table = table.slice(0, args.limit)
    data = _render(table, args.format)
    if args.output:
        _write_output(data, args.output)
        print(f"wrote {table.num_rows} rows to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(data.decode("utf-8"))
        if table.num_rows == 0:
            print(empty_note, file=sys.stderr)
    return 0


def _render(table, fmt: str) -> bytes:
    import io
    import json

    if fmt == "table":
        from equisweep.store.cli_common import format_table

        return (format_table(table) + "\n").encode()
    if fmt == "csv":
        import pyarrow.csv as pacsv

        sink = io.BytesIO()
        pacsv.write_csv(table, sink)
        return sink.getvalue()
    if fmt == "json":
        import math

        from equisweep.store.schema import JSON_COLUMNS

        # JSON has no NaN/Infinity: such values are written as null. The JSON columns (size,
        # hparams, config) are nested as objects, not strings holding JSON a second time.
        def value(k, v):
            if k in JSON_COLUMNS and isinstance(v, str):
                try:
                    return json.loads(v)
                except ValueError:
                    return v
            return None if isinstance(v, float) and not math.isfinite(v) else v

        rows = [{k: value(k, v) for k, v in r.items()} for r in table.to_pylist()]
        text = json.dumps(rows, indent=1, default=lambda v: v.isoformat(), allow_nan=False)
        return (text + "\n").encode()
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _write_output(data: bytes, path: str) -> None:
    """Write atomically so a failed query never leaves a half-written file."""
    import tempfile

    from equisweep.errors import UserError

    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UserError(f"--output: folder {directory} does not exist")
    if os.path.isdir(path):
        raise UserError(f"--output: {path} is a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    except OSError as err:
        raise UserError(f"--output {path}: cannot write ({err.strerror})") from err
    umask = os.umask(0)
    os.umask(umask)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the output is an ordinary file
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):  # a full disk, a read-only folder: one line, no file
            raise UserError(f"--output {path}: cannot write ({err.strerror})") from err
        raise


def curves(store, name: str | None, where: str | None):
    """All metric rows of the trials `where` selects from `final()`, joined with the trials'
    descriptive columns (and `hp_<name>` columns where the store has them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    chosen = store.final(name, where=where)
    keep = ["sweep", "key"] + [c for c in chosen.column_names
                               if c in CURVE_TRIAL_COLUMNS or c.startswith("hp_")]
    chosen = chosen.select(keep)
    rows = store.metrics(name)
    rows = rows.filter(pc.is_in(rows.column("key"), value_set=chosen.column("key")))
    if chosen.num_rows == 0 or rows.num_rows == 0:
        empty = rows.slice(0, 0)
        for f in chosen.schema:
            if f.name not in empty.column_names:
                empty = empty.append_column(f, pa.nulls(0, f.type))
        return empty
    joined = rows.join(chosen, keys=["sweep", "key"], join_type="inner")
    return joined.sort_by([("sweep", "ascending"), ("key", "ascending"),
                           ("step", "ascending")])


def run(args) -> int:
    from equisweep.errors import UserError

    if args.format == "parquet" and not args.output:
        raise UserError("--format parquet needs --output FILE")
    if args.limit is not None and args.limit < 0:
        raise UserError(f"--limit must be >= 0, got {args.limit}")
    store = open_for_reading(args)
    check_sweep(store, args.name)
    if args.final:
        table, view = store.final(args.name, where=args.where), "final"
    elif args.trials:
        table, view = store.trials(args.name, where=args.where), "trials"
    elif args.curves:
        table, view = curves(store, args.name, args.where), "curves"
    else:
        table, view = store.metrics(args.name, where=args.where), "metrics"
    return emit(table, args, TABLE_COLUMNS[view], store)
