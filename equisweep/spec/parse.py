"""Validating a sweep mapping (DESIGN §6) and building the `SweepSpec`.

Every problem in a file is collected before anything is reported: `parse_spec` raises one
`SpecError` (a `UserError`) whose message joins the problems with "; " and whose `.problems`
lists them, each starting with the field path (`grid.steps[1]: ...`). The `training:` and
`search:` sections are parsed in `equisweep.spec.hparams`.
"""

from __future__ import annotations

import json
from typing import Any

from equisweep.errors import UserError
from equisweep.spec import limits
from equisweep.spec.check import BAD, Check, SpecError, show, type_word, unknown
from equisweep.spec.hparams import parse_search, parse_training
from equisweep.spec.identity import canonical
from equisweep.spec.stacking import parse_stack
from equisweep.spec.sweep_spec import FamilySpec, GridSpec, SweepSpec
from equisweep.spec.trunks import check_wsd
from equisweep.store.naming import SWEEP_NAME_RULE, is_sweep_name, store_location

_TOP_KEYS = (
    "name",
    "description",
    "task",
    "families",
    "grid",
    "search",
    "training",
    "resources",
    "budget",
    "max_concurrent",
    "retries",
    "store",
)
_REQUIRED_TOP = ("name", "task", "families", "grid")


def parse_spec(data: Any, source: str = "<sweep>") -> SweepSpec:
    """Validate a mapping (the parsed YAML) and build the spec; SpecError lists all problems."""
    if not isinstance(data, dict):
        raise UserError(
            f"{source}: the top level must be a mapping of sweep fields "
            f"({', '.join(_REQUIRED_TOP)}, ...), got {type_word(data)}"
        )
    numbers = limits.number_problems(data)
    if numbers:  # before anything computes with them
        raise SpecError(source, numbers)
    c = Check()
    c.mapping(data, "", _TOP_KEYS, _REQUIRED_TOP)
    name = _parse_name(c, data["name"]) if "name" in data else BAD
    description = data.get("description", "")
    if not isinstance(description, str):
        c.add("description", f"must be a string, got {show(description)}")
    task = _parse_task(c, data["task"]) if "task" in data else BAD
    families = _parse_families(c, data["families"]) if "families" in data else BAD
    grid = _parse_grid(c, data["grid"], task) if "grid" in data else BAD
    training, hp_defaults = parse_training(c, data.get("training", {}))
    stack = parse_stack(c, data.get("training", {}))
    search = parse_search(c, data.get("search", {}))
    resources = _parse_resources(c, data.get("resources", {}))
    budget = _parse_budget(c, data.get("budget"))
    max_concurrent = c.integer(data.get("max_concurrent", 1), "max_concurrent", 1)
    retries = c.integer(data.get("retries", 0), "retries", 0)
    if BAD not in (grid, training, search):
        check_wsd(c, grid, training, hp_defaults, search)
    store = data.get("store")
    if store is not None and (not isinstance(store, str) or not store.strip()):
        c.add("store", f"must be a path or URI string, got {show(store)}")
    store = store_location(None, store)  # the file's `store:`, else $EQUISWEEP_STORE, ...
    if c.problems:
        raise SpecError(source, c.problems)

    spec = SweepSpec(
        name=name,
        description=description,
        task=task,
        families=families,
        grid=grid,
        search=search,
        training=training,
        hparam_defaults=hp_defaults,
        resources=resources,
        budget=budget,
        max_concurrent=max_concurrent,
        retries=retries,
        store=store,
        stack=stack,
        source=source,
        raw=data,
    )
    too_many = limits.too_many_trials(spec)
    if too_many:  # before anything expands the grid
        raise SpecError(source, [too_many])
    if budget is not None:
        cheapest = min(cell.flops for cell in spec.cells())
        if cheapest > budget["flops"]:
            raise SpecError(
                source,
                [
                    f"budget.flops: {budget['flops']:.4g} admits no trial; the cheapest trial "
                    f"needs {cheapest:.4g} FLOPs"
                ],
            )
    return spec


def _parse_name(c: Check, v: Any) -> str | Any:
    if not is_sweep_name(v):  # the store's rule: the name becomes a folder name
        return c.add("name", f"{SWEEP_NAME_RULE}, got {show(v)}")
    return v


def _parse_task(c: Check, raw: Any):
    if not isinstance(raw, dict):
        return c.add(
            "task", f"must be a mapping (name: rigid_body, trajectories, ...), got {show(raw)}"
        )
    from equisweep.task import TaskConfig

    try:
        return TaskConfig.from_dict(dict(raw))
    except UserError as exc:
        msg = str(exc)
        return c.add("" if msg.startswith("task") else "task", msg)


def _family_registry():
    from equisweep.models import FAMILIES, validate_size

    return FAMILIES, validate_size


def _parse_families(c: Check, raw: Any) -> dict | Any:
    families, validate_size = _family_registry()
    allowed = list(families)
    if not isinstance(raw, dict) or not raw:
        return c.add(
            "families",
            f"must map family names ({', '.join(allowed)}) to {{sizes: [...]}}, got {show(raw)}",
        )
    out = {}
    for name, fam in raw.items():
        path = f"families.{name}"
        if name not in families:
            c.add(path, unknown(name, allowed, "unknown family"))
            continue
        if c.mapping(fam, path, ("sizes", "augment"), ("sizes",)) is BAD:
            continue
        sizes = (
            _parse_sizes(c, fam.get("sizes"), name, families[name], validate_size, f"{path}.sizes")
            if "sizes" in fam
            else BAD
        )
        augment = _parse_augment(
            c, fam.get("augment", False), name, families[name], f"{path}.augment"
        )
        if sizes is not BAD and augment is not BAD:
            out[name] = FamilySpec(sizes=sizes, augment=augment)
    return out if len(out) == len(raw) else BAD


def _parse_sizes(c, v, family, entry, validate_size, path) -> list | Any:
    if v == "ladder":
        v = list(entry.ladder)
    if not isinstance(v, list) or not v:
        return c.add(
            path,
            "must be a non-empty list of sizes like {width: 8, depth: 2}, or "
            f"'ladder' for the family's whole ladder; got {show(v)}",
        )
    out, seen, bad = [], {}, False
    for i, size in enumerate(v):
        p = f"{path}[{i}]"
        if not isinstance(size, dict):
            bad = c.add(p, f"must be a mapping like {{width: 8, depth: 2}}, got {show(size)}")
            continue
        try:
            norm = dict(validate_size(family, dict(size)))
        except UserError as exc:
            bad = c.add(p, str(exc))
            continue
        ident = json.dumps(canonical(norm), sort_keys=True)
        if ident in seen:
            bad = c.add(p, f"the same size as {path}[{seen[ident]}] once defaults are filled in")
            continue
        seen[ident] = i
        out.append(norm)
    return BAD if bad is BAD else out


def _parse_augment(c, v, family, entry, path) -> list | Any:
    values = v if isinstance(v, list) else [v]
    if (
        not values
        or not all(isinstance(x, bool) for x in values)
        or len(set(values)) != len(values)
    ):
        return c.add(path, f"must be true, false or [false, true], got {show(v)}")
    if True in values and entry.equivariant:  # the family's own declaration (models.Family)
        return c.add(
            path,
            f"{family} is {entry.group}-equivariant already; augmentation is for "
            "non-equivariant families (drop the key or set it to false)",
        )
    return values


def _parse_grid(c: Check, raw: Any, task) -> GridSpec | Any:
    keys = ("steps", "train_trajectories", "seed")
    if c.mapping(raw, "grid", keys, ("steps",)) is BAD:
        return BAD
    steps = c.int_list(raw["steps"], "grid.steps", 1) if "steps" in raw else BAD
    pool = None if task is BAD else task.trajectories
    if "train_trajectories" in raw:
        tt = c.int_list(raw["train_trajectories"], "grid.train_trajectories", 1)
        if tt is not BAD and pool is not None:
            raw_tt = raw["train_trajectories"]
            for i, n in enumerate(tt):
                if n > pool:
                    p = (
                        f"grid.train_trajectories[{i}]"
                        if isinstance(raw_tt, list)
                        else ("grid.train_trajectories")
                    )
                    tt = c.add(p, f"{n} exceeds task.trajectories ({pool}), the train pool")
    else:
        tt = [pool] if pool is not None else BAD
    seed = c.int_list(raw.get("seed", [0]), "grid.seed", 0)
    if BAD in (steps, tt, seed):
        return BAD
    return GridSpec(steps=steps, train_trajectories=tt, seed=seed)


def _parse_resources(c: Check, raw: Any) -> dict | Any:
    if c.mapping(raw, "resources", ("cpu", "gpu")) is BAD:
        return BAD
    out = {}
    for key, default, what, ok in (
        ("cpu", 1, "a number > 0", lambda v: v > 0),
        ("gpu", 0, "a number >= 0", lambda v: v >= 0),
    ):
        v = c.number(raw.get(key, default), f"resources.{key}", what, ok)
        if v is not BAD and v > 1 and not float(v).is_integer():
            # Ray only splits a single unit: 0.5 GPU is fine, 1.5 is not.
            v = c.add(
                f"resources.{key}",
                f"above 1 must be a whole number (Ray shares only fractions of one unit), got {v}",
            )
        out[key] = v if v is BAD else float(v)
    return out


def _parse_budget(c: Check, raw: Any) -> dict | None | Any:
    if raw is None:
        return None
    if c.mapping(raw, "budget", ("flops",), ("flops",)) is BAD or "flops" not in raw:
        return BAD
    v = c.number(raw["flops"], "budget.flops", "a number > 0 (training FLOPs)", lambda v: v > 0)
    return BAD if v is BAD else {"flops": float(v)}
