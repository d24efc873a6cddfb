"""Reading sweep files: safe YAML, numbers like `1e-3`, duplicate keys refused.

YAML is read with a safe loader (tags such as `!!python/object` are refused) that also reads
`1e-3` as a number (PyYAML's YAML 1.1 rules would make it a string) and refuses duplicate keys
(YAML keeps the last one silently). Every unreadable file is a one-line UserError naming it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from equisweep.errors import UserError
from equisweep.spec import limits
from equisweep.spec.parse import parse_spec
from equisweep.spec.sweep_spec import SweepSpec


class _Loader(yaml.SafeLoader):
    """Safe YAML plus numbers like `1e-3`, duplicate keys refused, and the bounds of
    `equisweep.spec.limits` (nesting depth, alias expansion) enforced while composing."""

    _depth = 0

    def compose_node(self, parent, index):
        self._depth += 1
        try:
            if self._depth > limits.MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {limits.MAX_DEPTH} levels deep",
                    self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None and limits.expanded_nodes(node) > limits.MAX_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"expands to more than {limits.MAX_NODES} values (aliases "
                "repeated inside aliases?)", node.start_mark)
        return node

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable key: the base class reports it
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep)


# YAML 1.1 needs a dot in a float ("1.0e-3"); users write 1e-3 and mean a number.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def read_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file safely; UserError naming the file for anything unreadable."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"{p}: no such file")
    if p.is_dir():
        raise UserError(f"{p}: is a directory, expected a sweep YAML file")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise UserError(f"{p}: cannot read ({exc.strerror})") from None
    if size > limits.MAX_FILE_BYTES:
        raise UserError(f"{p}: {size} bytes; a sweep file is at most "
                        f"{limits.MAX_FILE_BYTES} bytes")
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{p}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise UserError(f"{p}: cannot read ({exc.strerror})") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(str(exc.problem or exc.context or "").split())
        if "could not determine a constructor" in problem:
            problem += " (sweep files are plain YAML data; object tags are refused)"
        raise UserError(f"{p}: not a valid sweep YAML: {where}{problem}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{p}: not a valid sweep YAML: {' '.join(str(exc).split())}") from None


def load_spec(path: str | os.PathLike) -> SweepSpec:
    """Read, validate and return a sweep; SpecError lists every problem found."""
    data = read_yaml(path)
    if data is None:
        raise UserError(f"{path}: empty sweep file (expected a mapping with name, task, ...)")
    return parse_spec(data, source=str(path))
