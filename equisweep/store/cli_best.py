"""`equisweep best NAME [--per cell|variant]`: the tuned points of a sweep.

The best finished trial of each cell (or variant) by final validation loss — the points
the scaling-law fits use (see store/best.py), like `ResultGrid.get_best_result` or
`optuna best-trial`.
"""

from __future__ import annotations

from equisweep.store.cli_common import add_store_argument, check_sweep, open_for_reading

TABLE_COLUMNS = ("sweep", "key", "family", "augment", "size", "n_params", "steps",
                 "train_trajectories", "seed", "*hp", "val_loss", "test_loss",
                 "test_loss_se", "skill", "at_grid_edge")


def add_arguments(parser) -> None:
    from equisweep.store.cli_query import FORMATS  # stdlib-only module: --help stays fast

    parser.add_argument("name", metavar="NAME", help="sweep name")
    add_store_argument(parser)
    parser.add_argument("--per", choices=("cell", "variant"), default="cell",
                        help="one trial per grid cell (the fits' tuned points; default) or "
                             "per variant (family with/without augmentation)")
    parser.add_argument("--columns", metavar="A,B",
                        help="comma-separated columns to show, or 'all' (the table format "
                             "shows a compact set by default; other formats show all)")
    parser.add_argument("--format", choices=FORMATS, default="table",
                        help="output format (default: table; parquet needs --output)")
    parser.add_argument("--output", metavar="FILE", help="write to FILE instead of stdout")


def run(args) -> int:
    from equisweep.errors import UserError
    from equisweep.store.best import best_trials
    from equisweep.store.cli_query import emit

    if args.format == "parquet" and not args.output:
        raise UserError("--format parquet needs --output FILE")
    store = open_for_reading(args)
    check_sweep(store, args.name)
    final = store.final(args.name)
    table = best_trials(final, per=args.per)
    note = ""
    if table.num_rows == 0:
        from equisweep.store.best import final_loss, why_no_points

        cols = [c for c in ("status", "test_loss", "val_loss") if c in final.column_names]
        df = final.select(cols).to_pandas()
        statuses = df["status"].tolist() if "status" in df else ["unknown"] * len(df)
        note = f"(sweep {args.name!r}: {why_no_points(statuses, final_loss(df))})"
    return emit(table, args, TABLE_COLUMNS, store, note)
