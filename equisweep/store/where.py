"""A safe `--where` filter: Python-like comparisons on columns → pyarrow compute expression.

Grammar (parsed with `ast`, never evaluated): comparisons (==, !=, <, <=, >, >=, chained),
`in` / `not in` with a list or tuple of literals, `and`, `or`, `not`, parentheses, column
names and literals (strings, numbers, True/False/None). `col == None` tests for null.
Example: ``family == 'gatr' and steps >= 800 and seed in (0, 1)``.
"""

from __future__ import annotations

import ast
import math

import pyarrow as pa
import pyarrow.compute as pc

from equisweep.errors import UserError

_CMP = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: a < b,
    ast.LtE: lambda a, b: a <= b,
    ast.Gt: lambda a, b: a > b,
    ast.GtE: lambda a, b: a >= b,
}
_LITERAL_TYPES = (str, int, float, bool, type(None))
_INT64 = (-(2**63), 2**63 - 1)
MAX_LENGTH = 10_000  # characters of one --where expression
MAX_DEPTH = 50  # levels of nesting (parentheses, not, and/or inside comparisons)


class _Bad(Exception):
    pass


def compile_where(text: str, columns) -> tuple[pc.Expression, set[str]]:
    """Parse `text`; return the expression and the column names it uses.

    UserError (naming the expression) for anything outside the grammar or an unknown column.
    """
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"--where expression is empty: {text!r}")
    if len(text) > MAX_LENGTH:
        raise UserError(f"--where expression is {len(text)} characters long; at most "
                        f"{MAX_LENGTH} (filter the result in pandas/DuckDB instead)")
    shown = text if len(text) <= 80 else text[:77] + "..."
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as err:
        raise UserError(f"--where {shown!r} is not a valid expression ({err.msg})") from None
    except (RecursionError, MemoryError):
        raise UserError(f"--where {shown!r} is nested too deeply") from None
    depth = _depth(tree.body)
    if depth > MAX_DEPTH:
        raise UserError(f"--where {shown!r} is nested {depth} levels deep; at most {MAX_DEPTH}")
    text = shown
    known = list(columns)
    used: set[str] = set()
    try:
        expr = _node(tree.body, set(known), used)
    except _Bad as err:
        raise UserError(f"--where {text!r}: {err}") from None
    if not isinstance(expr, pc.Expression) or not used:
        raise UserError(f"--where {text!r} must compare a column with a value")
    return expr, used


def _depth(node, limit: int = 10 * 50) -> int:
    """How deeply `node` nests (iteratively: a hostile expression must not recurse us)."""
    deepest, todo = 0, [(node, 1)]
    while todo:
        n, d = todo.pop()
        deepest = max(deepest, d)
        if d <= limit:
            todo.extend((c, d + 1) for c in ast.iter_child_nodes(n))
    return deepest


def _literal(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, _LITERAL_TYPES):
        return _in_range(node.value, node)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        value = _literal(node.operand)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _in_range(-value, node)
    raise _Bad(f"only column names and literal values are allowed, not {ast.unparse(node)!r}")


def _in_range(value, node):
    """Numbers the store's columns can hold: int64 integers and finite floats."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        raise _Bad(f"the number {ast.unparse(node)[:40]} does not fit a 64-bit integer")
    if isinstance(value, float) and not math.isfinite(value):
        raise _Bad(f"the number {ast.unparse(node)[:40]} is not finite")
    return value


def _operand(node, known, used):
    if isinstance(node, ast.Name):
        if node.id not in known:
            raise _Bad(f"unknown column {node.id!r} (columns: {', '.join(sorted(known))})")
        used.add(node.id)
        return pc.field(node.id)
    return _literal(node)


def _compare(op, left, right, node):
    if isinstance(op, (ast.In, ast.NotIn)):
        if not isinstance(left, pc.Expression):
            raise _Bad(f"left of 'in' must be a column in {ast.unparse(node)!r}")
        if not isinstance(right, list):
            raise _Bad(f"right of 'in' must be a list of values in {ast.unparse(node)!r}")
        values = [v for v in right if v is not None]
        out = left.isin(values)
        if len(values) != len(right):
            out = out | left.is_null()
        return ~out if isinstance(op, ast.NotIn) else out
    if isinstance(right, list) or isinstance(left, list):
        raise _Bad(f"a list can only follow 'in' in {ast.unparse(node)!r}")
    if not isinstance(left, pc.Expression) and not isinstance(right, pc.Expression):
        raise _Bad(f"{ast.unparse(node)!r} compares two values, no column")
    if left is None or right is None:
        col = left if right is None else right
        if isinstance(op, ast.Eq):
            return col.is_null()
        if isinstance(op, ast.NotEq):
            return col.is_valid()
        raise _Bad(f"None can only be compared with == or != in {ast.unparse(node)!r}")
    fn = _CMP.get(type(op))
    if fn is None:
        raise _Bad(f"operator not allowed in {ast.unparse(node)!r}")
    left = left if isinstance(left, pc.Expression) else pc.scalar(left)
    right = right if isinstance(right, pc.Expression) else pc.scalar(right)
    return fn(left, right)


def _node(node, known, used):
    if isinstance(node, ast.BoolOp):
        parts = [_node(v, known, used) for v in node.values]
        out = parts[0]
        for p in parts[1:]:
            out = (out & p) if isinstance(node.op, ast.And) else (out | p)
        return out
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return ~_node(node.operand, known, used)
    if isinstance(node, ast.Compare):
        out = None
        left = _operand(node.left, known, used)
        for op, comp in zip(node.ops, node.comparators):
            if isinstance(comp, (ast.List, ast.Tuple, ast.Set)):
                right = [_literal(e) for e in comp.elts]
            else:
                right = _operand(comp, known, used)
            part = _compare(op, left, right, node)
            out = part if out is None else out & part
            left = right
        return out
    if isinstance(node, ast.Name):
        # A bare boolean column, e.g. `augment and family == 'gatr'`.
        return _operand(node, known, used)
    raise _Bad(f"{ast.unparse(node)!r} is not a comparison (allowed: == != < <= > >= in, "
               "and, or, not)")


def compile_for(where, schema: pa.Schema):
    """(expression, pushdown) — pushdown is set when it only names dedup-group columns."""
    if isinstance(where, pc.Expression):
        return where, None
    expr, names = compile_where(where, schema.names)
    apply_filter(schema.empty_table(), expr, where)  # type errors surface before any scan
    pushdown = expr if names <= {"sweep", "key", "step"} else None
    return expr, pushdown


def filter_table(table: pa.Table, where) -> pa.Table:
    if where is None:
        return table
    expr, _ = compile_for(where, table.schema)
    return apply_filter(table, expr, where)


def apply_filter(table: pa.Table, expr, text) -> pa.Table:
    try:
        return table.filter(expr)
    except (pa.ArrowException, TypeError) as err:
        raise UserError(f"cannot apply --where {text!r}: {' '.join(str(err).split())}") from err
