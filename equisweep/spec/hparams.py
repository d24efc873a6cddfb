"""Hyperparameters: the searchable ones with their defaults and domains, the `training:` and
`search:` sections of a sweep file, and how a search samples a cell's hyperparameters.

`HPARAM_DEFAULTS` is the one set of hyperparameter defaults (train.py fills a trial config's
missing hparams from it too).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from equisweep.schedule import DECAY_SHAPES, DEFAULT_COOLDOWN, DEFAULT_DECAY, SCHEDULES
from equisweep.spec.check import BAD, Check, is_int, show, unknown
from equisweep.spec.identity import canonical

SEARCH_METHODS = ("grid", "random", "optuna")
PRECISIONS = ("fp32", "bf16")
DISTRIBUTIONS = ("loguniform", "uniform", "choice", "int")

# Searchable hyperparameters: default and the open/closed interval a value must lie in.
HPARAM_DEFAULTS: dict[str, float] = {
    "lr": 1e-3,
    "weight_decay": 0.0,
    "grad_clip": 1.0,
    "warmup": 0.05,
    "beta1": 0.9,
    "beta2": 0.999,
}
_HPARAM_DOMAIN: dict[str, tuple[str, Any]] = {
    "lr": ("a number > 0", lambda v: v > 0),
    "weight_decay": ("a number >= 0", lambda v: v >= 0),
    "grad_clip": ("a number > 0", lambda v: v > 0),
    "warmup": ("a fraction in [0, 1)", lambda v: 0 <= v < 1),
    "beta1": ("a number in [0, 1)", lambda v: 0 <= v < 1),
    "beta2": ("a number in [0, 1)", lambda v: 0 <= v < 1),
}
TRAINING_DEFAULTS: dict[str, Any] = {
    "batch_size": 16,
    "schedule": "cosine",
    "warmup": HPARAM_DEFAULTS["warmup"],  # `training.warmup` is the hparam's default
    "eval_every": 50,
    "checkpoint_every": 100,
    "precision": "fp32",
}


@dataclasses.dataclass(frozen=True)
class Param:
    """One `search.params` entry: `kind` is fixed|loguniform|uniform|choice|int."""

    kind: str
    value: Any  # fixed: the value; choice: list; the rest: [lo, hi]

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "fixed":
            return {"type": "fixed", "value": self.value}
        if self.kind == "choice":
            return {"type": "choice", "choices": list(self.value)}
        return {"type": self.kind, "low": self.value[0], "high": self.value[1]}


@dataclasses.dataclass(frozen=True)
class SearchSpec:
    method: str = "grid"
    samples_per_cell: int = 1
    params: dict = dataclasses.field(default_factory=dict)  # name -> Param
    seed: int = 0


def draw(p: Param, rng) -> Any:
    if p.kind == "choice":
        return p.value[int(rng.integers(len(p.value)))]
    lo, hi = p.value
    if p.kind == "int":
        return int(rng.integers(lo, hi + 1))  # inclusive, as Optuna's IntDistribution
    if p.kind == "uniform":
        return float(rng.uniform(lo, hi))
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _hparam(c: Check, name: str, v: Any, path: str) -> Any:
    what, ok = _HPARAM_DOMAIN[name]
    return c.number(v, path, what, ok)


_HP_FIELDS = tuple(k for k in HPARAM_DEFAULTS if k != "warmup")


# Only under `schedule: wsd`, and only then part of a trial's `training` dict: the keys of
# cosine/linear/constant trials stay what they were before WSD existed.
WSD_KEYS = ("cooldown", "decay")


def parse_training(c: Check, raw: Any) -> tuple[dict, dict]:
    # `stack` is read by `equisweep.spec.stacking`: how trials run, never part of a trial.
    allowed = tuple(TRAINING_DEFAULTS) + WSD_KEYS + _HP_FIELDS + ("stack",)
    if c.mapping(raw, "training", allowed) is BAD:
        return BAD, BAD
    t = {**TRAINING_DEFAULTS, **{k: v for k, v in raw.items() if k in TRAINING_DEFAULTS}}
    for k in ("batch_size", "eval_every", "checkpoint_every"):
        t[k] = c.integer(t[k], f"training.{k}", 1)
    t["schedule"] = c.one_of(t["schedule"], "training.schedule", SCHEDULES)
    t["precision"] = c.one_of(t["precision"], "training.precision", PRECISIONS)
    if t["schedule"] == "wsd":
        t["cooldown"] = c.number(raw.get("cooldown", DEFAULT_COOLDOWN), "training.cooldown",
                                 "a fraction in (0, 1) of each length", lambda v: 0 < v < 1)
        t["decay"] = c.one_of(raw.get("decay", DEFAULT_DECAY), "training.decay", DECAY_SHAPES)
    else:
        for k in WSD_KEYS:
            if k in raw:
                c.add(f"training.{k}", f"only applies to schedule wsd, not {show(t['schedule'])}")
    t["warmup"] = _hparam(c, "warmup", t["warmup"], "training.warmup")
    hp = dict(HPARAM_DEFAULTS, warmup=t["warmup"])
    for k in _HP_FIELDS:
        if k in raw:
            hp[k] = _hparam(c, k, raw[k], f"training.{k}")
    return t, hp


def parse_search(c: Check, raw: Any) -> SearchSpec | Any:
    if c.mapping(raw, "search", ("method", "samples_per_cell", "params", "seed")) is BAD:
        return BAD
    method = c.one_of(raw.get("method", "grid"), "search.method", SEARCH_METHODS)
    spc = c.integer(raw.get("samples_per_cell", 1), "search.samples_per_cell", 1)
    seed = c.integer(raw.get("seed", 0), "search.seed", 0)
    params_raw = raw.get("params", {})
    if not isinstance(params_raw, dict):
        return c.add(
            "search.params", f"must be a mapping of hparam -> distribution, got {show(params_raw)}"
        )
    params, bad = {}, False
    for name, v in params_raw.items():
        path = f"search.params.{name}"
        if name not in HPARAM_DEFAULTS:
            bad = c.add(path, unknown(name, HPARAM_DEFAULTS, "not a searchable hyperparameter"))
            continue
        p = _parse_param(c, name, v, path)
        if p is BAD:
            bad = True
        else:
            params[name] = p
    if method == "grid" and params:
        for name, p in params.items():
            if p.kind not in ("choice", "fixed"):
                bad = c.add(
                    f"search.params.{name}",
                    f"grid search needs {{choice: [...]}} or a "
                    f"fixed value, got {p.kind} (use method random or optuna)",
                )
    if method == "grid" and spc is not BAD and spc != 1:
        bad = c.add(
            "search.samples_per_cell",
            f"must be 1 for grid search (it enumerates the "
            f"choice lists), got {spc}; use method random or optuna",
        )
    if method in ("random", "optuna") and not bad:
        if not any(p.kind != "fixed" for p in params.values()):
            bad = c.add(
                "search.params",
                f"{method} search needs at least one sampled parameter, "
                "e.g. lr: {loguniform: [1.0e-4, 3.0e-3]}",
            )
    if bad or BAD in (method, spc, seed):
        return BAD
    return SearchSpec(method=method, samples_per_cell=spc, params=params, seed=seed)


def _parse_param(c: Check, name: str, v: Any, path: str) -> Param | Any:
    if not isinstance(v, dict):
        if isinstance(v, list):
            return c.add(path, f"a list is ambiguous; write {{choice: {show(v)}}}")
        value = _hparam(c, name, v, path)
        return BAD if value is BAD else Param("fixed", value)
    if len(v) != 1:
        return c.add(
            path,
            "must be one of {loguniform: [lo, hi]}, {uniform: [lo, hi]}, "
            f"{{choice: [...]}}, {{int: [lo, hi]}} or a number; got {show(v)}",
        )
    ((kind, arg),) = v.items()
    path = f"{path}.{kind}"
    if kind not in DISTRIBUTIONS:
        return c.add(path, unknown(kind, DISTRIBUTIONS, "unknown distribution"))
    if kind == "choice":
        if not isinstance(arg, list) or not arg:
            return c.add(path, f"must be a non-empty list, got {show(arg)}")
        values = [_hparam(c, name, x, f"{path}[{i}]") for i, x in enumerate(arg)]
        if BAD in values:
            return BAD
        if len({canonical(x) for x in values}) != len(values):
            return c.add(path, f"lists a value twice: {show(arg)}")
        return Param("choice", values)
    if not isinstance(arg, list) or len(arg) != 2:
        return c.add(path, f"must be [low, high], got {show(arg)}")
    lo, hi = (_hparam(c, name, x, f"{path}[{i}]") for i, x in enumerate(arg))
    if BAD in (lo, hi):
        return BAD
    if kind == "int" and not (is_int(lo) and is_int(hi)):
        return c.add(path, f"must be [low, high] integers, got {show(arg)}")
    if lo >= hi:
        return c.add(path, f"low must be below high, got [{lo}, {hi}]")
    if kind == "loguniform" and lo <= 0:
        return c.add(path, f"low must be > 0 on a log scale, got {lo}")
    if kind == "int":
        lo, hi = int(lo), int(hi)
    return Param(kind, [lo, hi])
