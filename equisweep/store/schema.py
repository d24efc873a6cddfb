"""Column schemas of the results store and the conversion of reported rows into them.

The `sweep` column is not stored inside fragments: it is the hive partition
(`sweep=<name>/`), so pandas, DuckDB and Polars recover it from the path and it can never
disagree with the folder a fragment lives in. `_seq` is the write order (nanoseconds,
strictly increasing per writer); readers use it to define "last written" and drop it.
"""

from __future__ import annotations

import datetime as _dt
import json
import numbers

import pyarrow as pa

from equisweep.spec.hparams import HPARAM_DEFAULTS

TS = pa.timestamp("us", tz="UTC")
SEQ = "_seq"

# Typed copies of the JSON columns, so `--where "hp_lr > 1e-3"` and pandas need no parsing:
# one float column per searchable hyperparameter (spec's list) and one integer column per size
# key that every family has (the rest of a size stays in the `size` JSON).
HP_COLUMNS = {f"hp_{name}": name for name in HPARAM_DEFAULTS}
SIZE_COLUMNS = {"size_width": "width", "size_depth": "depth"}

TRIAL_FIELDS = [
    pa.field("key", pa.string(), nullable=False),
    # The grid cell (point, task and training hashed; `Cell.key`): what planning and
    # analysis group trials by. Null on rows written before it was stored.
    pa.field("cell_key", pa.string()),
    pa.field("family", pa.string()),
    pa.field("equivariant", pa.bool_()),  # the family's declaration (models.Family)
    pa.field("size", pa.string()),
    *(pa.field(name, pa.int64()) for name in SIZE_COLUMNS),
    pa.field("n_params", pa.int64()),
    pa.field("flops_per_step", pa.float64()),
    # GATr v1.4's nominal count of one step (models/nominal.py); null on rows written before
    # it was stored (analysis computes it from family, size and config then).
    pa.field("nominal_flops_per_step", pa.float64()),
    pa.field("steps", pa.int64()),
    pa.field("train_trajectories", pa.int64()),
    pa.field("augment", pa.bool_()),
    pa.field("seed", pa.int64()),
    # The dataset's content key (`TaskConfig.key()`) and horizon: what joins a trial to the
    # zero-parameter baselines measured on the same windows.
    pa.field("dataset", pa.string()),
    pa.field("delta", pa.int64()),
    pa.field("hparams", pa.string()),
    *(pa.field(name, pa.float64()) for name in HP_COLUMNS),
    pa.field("config", pa.string()),
    # WSD (schedule: wsd): the trial whose run this one shares (its own key for a trunk) and,
    # for a branch, the step it forked from its trunk at; null for every other trial.
    pa.field("trunk", pa.string()),
    pa.field("fork_step", pa.int64()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("attempt", pa.int64(), nullable=False),
    pa.field("node", pa.string()),
    pa.field("error", pa.string()),
    pa.field("started_at", TS),
    pa.field("ended_at", TS),
]

METRIC_FIELDS = [
    pa.field("key", pa.string(), nullable=False),
    pa.field("attempt", pa.int64(), nullable=False),
    pa.field("step", pa.int64(), nullable=False),
    pa.field("samples", pa.int64()),
    pa.field("epochs", pa.float64()),
    pa.field("flops", pa.float64()),
    pa.field("wall_s", pa.float64()),
    pa.field("train_loss", pa.float64()),
    pa.field("val_loss", pa.float64()),
    # Standard error of val_loss/test_loss, clustered by trajectory (task/evaluation.py),
    # and how many fixed evaluation windows each was measured on.
    pa.field("val_loss_se", pa.float64()),
    pa.field("val_windows", pa.int64()),
    pa.field("lr", pa.float64()),
    pa.field("grad_norm", pa.float64()),
    pa.field("test_loss", pa.float64()),
    pa.field("test_loss_se", pa.float64()),
    pa.field("test_windows", pa.int64()),
    # Cumulative evaluation FLOPs (forward passes: val, test, equivariance checks); `flops`
    # is training compute only.
    pa.field("eval_flops", pa.float64()),
    pa.field("equivariance_error", pa.float64()),
    pa.field("samples_per_s", pa.float64()),
    pa.field("flops_per_s", pa.float64()),
]

# The driver adds who reported a row (key, attempt); the trainer reports everything else.
ROW_IDENTITY = ("key", "attempt")
REPORTED_METRICS = tuple(f.name for f in METRIC_FIELDS if f.name not in ROW_IDENTITY)
# Zero-parameter baselines (task/baselines.py) on the fixed evaluation windows of a split:
# one row per (dataset, delta, split, baseline), written by the driver when a sweep starts.
BASELINE_FIELDS = [
    pa.field("dataset", pa.string(), nullable=False),
    pa.field("delta", pa.int64(), nullable=False),
    pa.field("split", pa.string(), nullable=False),
    pa.field("baseline", pa.string(), nullable=False),
    pa.field("loss", pa.float64()),
    pa.field("loss_se", pa.float64()),
    pa.field("windows", pa.int64()),
    pa.field("trajectories", pa.int64()),
    pa.field("stride", pa.int64()),
]
BASELINE_KEY = ("dataset", "delta", "split", "baseline")

_SEQ_FIELD = pa.field(SEQ, pa.int64(), nullable=False)
_SWEEP_FIELD = pa.field("sweep", pa.string(), nullable=False)

# What a fragment file holds.
TRIAL_FILE_SCHEMA = pa.schema(TRIAL_FIELDS + [_SEQ_FIELD])
METRIC_FILE_SCHEMA = pa.schema(METRIC_FIELDS + [_SEQ_FIELD])
BASELINE_FILE_SCHEMA = pa.schema(BASELINE_FIELDS + [_SEQ_FIELD])
# What readers see (with the write order, before it is dropped).
TRIAL_READ_SCHEMA = pa.schema([_SWEEP_FIELD] + TRIAL_FIELDS + [_SEQ_FIELD])
METRIC_READ_SCHEMA = pa.schema([_SWEEP_FIELD] + METRIC_FIELDS + [_SEQ_FIELD])
BASELINE_READ_SCHEMA = pa.schema([_SWEEP_FIELD] + BASELINE_FIELDS + [_SEQ_FIELD])
# Public schemas (what trials()/metrics() return).
TRIAL_SCHEMA = pa.schema([_SWEEP_FIELD] + TRIAL_FIELDS)
METRIC_SCHEMA = pa.schema([_SWEEP_FIELD] + METRIC_FIELDS)
BASELINE_SCHEMA = pa.schema([_SWEEP_FIELD] + BASELINE_FIELDS)

STATUSES = ("running", "retrying", "finished", "failed", "diverged", "skipped_budget")
JSON_COLUMNS = {"size", "hparams", "config"}

def _to_timestamp(value):
    if value is None or isinstance(value, _dt.datetime):
        if isinstance(value, _dt.datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        # Ray and time.time() report seconds since the epoch.
        return _dt.datetime.fromtimestamp(float(value), tz=_dt.timezone.utc)
    if isinstance(value, str):
        return _to_timestamp(_dt.datetime.fromisoformat(value))
    raise TypeError(f"cannot store {value!r} as a timestamp")


def _check_int(column: str, value):
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError(f"column {column!r} expects an integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return int(value)
    raise TypeError(f"column {column!r} expects an integer, got {value!r}")


def _check_float(column: str, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"column {column!r} expects a number, got {value!r}")
    # NaN is kept: a diverged trial reports a NaN loss, and that is not "not measured"
    # (which is null).
    return float(value)


def _converters(fields):
    out = {}
    for f in fields:
        if f.name in JSON_COLUMNS:
            out[f.name] = lambda c, v: (
                v if v is None or isinstance(v, str) else json.dumps(v, sort_keys=True)
            )
        elif pa.types.is_timestamp(f.type):
            out[f.name] = lambda c, v: _to_timestamp(v)
        elif pa.types.is_integer(f.type):
            out[f.name] = _check_int
        elif pa.types.is_floating(f.type):
            out[f.name] = _check_float
        elif pa.types.is_boolean(f.type):
            out[f.name] = lambda c, v: None if v is None else bool(v)
        else:
            out[f.name] = lambda c, v: None if v is None else str(v)
    return out


_TRIAL_CONV = _converters(TRIAL_FIELDS)
_METRIC_CONV = _converters(METRIC_FIELDS)
_BASELINE_CONV = _converters(BASELINE_FIELDS)


def _normalise(row: dict, conv: dict, required: tuple[str, ...], sweep: str, kind: str) -> dict:
    """Validate one reported row. Wrong columns are a programming error, not user input."""
    if not isinstance(row, dict):
        raise TypeError(f"{kind} row must be a dict, got {type(row).__name__}")
    out = {}
    for name, value in row.items():
        if name == "sweep":
            if value != sweep:
                raise ValueError(f"{kind} row for sweep {value!r} given to the writer of {sweep!r}")
            continue
        fn = conv.get(name)
        if fn is None:
            raise ValueError(f"unknown {kind} column {name!r} (known: {', '.join(conv)})")
        out[name] = fn(name, value)
    for name in required:
        if out.get(name) is None:
            raise ValueError(f"{kind} row is missing required column {name!r}")
    return out


def derived_columns(size: dict | None, hparams: dict | None) -> dict:
    """The typed `size_*` and `hp_*` columns of a trial row, from its size and hparams."""
    size, hparams = size or {}, hparams or {}
    out = {col: size.get(k) for col, k in SIZE_COLUMNS.items()}
    out.update({col: hparams.get(k) for col, k in HP_COLUMNS.items()})
    return out


def trial_columns(key: str, config: dict, *, n_params: int, flops_per_step: float,
                  equivariant: bool | None) -> dict:
    """The columns of a trial row that describe the trial (the same for every attempt and
    status), from its config dict (`TrialConfig.to_dict()`); the caller adds the state columns
    (status, attempt, node, error, started_at, ended_at)."""
    return {
        "key": key,
        "family": config["family"],
        "equivariant": equivariant,
        "size": config["size"],
        "n_params": int(n_params),
        "flops_per_step": float(flops_per_step),
        "nominal_flops_per_step": nominal_per_step(config),
        "steps": int(config["steps"]),
        "train_trajectories": int(config["train_trajectories"]),
        "augment": bool(config.get("augment", False)),
        "seed": int(config["seed"]),
        **dataset_columns(config.get("task")),
        "hparams": config["hparams"],
        "config": config,
    }


def nominal_per_step(config: dict) -> float | None:
    """The trial's nominal FLOPs per step (GATr v1.4's convention), from its config."""
    from equisweep.models.nominal import per_step

    training = config.get("training") or {}
    return per_step(config["family"], config["size"], config.get("task") or {},
                    training.get("batch_size", 0))


def dataset_columns(task: dict | None) -> dict:
    """`dataset` (the content key of the trial's dataset) and `delta` from a task dict."""
    if not isinstance(task, dict):
        return {"dataset": None, "delta": None}
    from equisweep.task.config import TaskConfig

    return {"dataset": TaskConfig.from_dict(task).key(), "delta": int(task.get("delta", 1))}


def fill_derived(table: pa.Table) -> pa.Table:
    """Rows written before the typed columns existed (all of them null) get them from their
    `size`/`hparams` JSON, so old stores answer `--where "hp_lr > ..."` too. Rows written
    since already carry them: only old rows are parsed, so a current store pays nothing."""
    import pyarrow.compute as pc

    typed = list(SIZE_COLUMNS) + list(HP_COLUMNS)
    if table.num_rows == 0:
        return table
    old = table.column(typed[0]).is_null()
    for c in typed[1:]:
        old = pc.and_(old, table.column(c).is_null())
    has_json = pc.or_(table.column("size").is_valid(), table.column("hparams").is_valid())
    rows = pc.indices_nonzero(pc.and_(old, has_json)).to_pylist()
    if not rows:
        return table
    sizes, hps = table.column("size").to_pylist(), table.column("hparams").to_pylist()
    cols = {c: table.column(c).to_pylist() for c in typed}
    for i in rows:
        for c, v in _derived_typed(sizes[i], hps[i]).items():
            cols[c][i] = v
    for c in typed:
        idx = table.schema.get_field_index(c)
        field = table.schema.field(idx)
        table = table.set_column(idx, field, pa.array(cols[c], field.type))
    return table


def _derived_typed(size, hparams) -> dict:
    """`derived_columns` of JSON text or dicts, each value converted to its column's type
    (None where a value is missing or of the wrong type: the JSON column keeps it)."""
    out = derived_columns(_mapping(size), _mapping(hparams))
    for c, v in out.items():
        try:
            out[c] = _TRIAL_CONV[c](c, v)
        except (TypeError, ValueError):
            out[c] = None
    return out


def _mapping(value) -> dict | None:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:  # a hand-written row with a broken JSON cell: leave it null
            return None
    return value if isinstance(value, dict) else None


def trial_row(row: dict, sweep: str) -> dict:
    if isinstance(row, dict):  # the typed copies always agree with the JSON they copy
        derived = _derived_typed(row.get("size"), row.get("hparams"))
        row = {**row, **{c: v for c, v in derived.items() if v is not None}}
    out = _normalise(row, _TRIAL_CONV, ("key", "status", "attempt"), sweep, "trial")
    if out["status"] not in STATUSES:
        raise ValueError(f"trial status {out['status']!r} is not one of {STATUSES}")
    return out


def metric_row(row: dict, sweep: str) -> dict:
    return _normalise(row, _METRIC_CONV, ("key", "attempt", "step"), sweep, "metric")


def conform_table(table: pa.Table, file_schema: pa.Schema, kind: str) -> pa.Table:
    """Bring a bulk-added table to the file schema: missing columns become nulls."""
    names = set(file_schema.names)
    for name in table.column_names:
        if name not in names and name != "sweep":
            raise ValueError(f"unknown {kind} column {name!r}")
    cols = []
    for f in file_schema:
        if f.name in table.column_names:
            cols.append(table.column(f.name).cast(f.type, safe=True))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    out = pa.Table.from_arrays(cols, schema=file_schema.with_metadata(None))
    for f in file_schema:
        if not f.nullable and out.column(f.name).null_count:
            raise ValueError(f"{kind} column {f.name!r} has nulls but is required")
    return out


def baseline_row(row: dict, sweep: str) -> dict:
    return _normalise(row, _BASELINE_CONV, BASELINE_KEY, sweep, "baseline")
