"""``--where`` expressions over result rows, e.g. ``status == "ok" and lipsync_confidence < 2``.

A small, safe subset of Python expressions, parsed with :mod:`ast` and never ``eval``-ed: column names,
constants, comparisons (``== != < <= > >= in``, ``not in``), ``and`` / ``or`` / ``not`` and lists of
constants. A null value compares false, as in SQL, so a row without a score never matches ``score < 2``.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterable, Mapping

RowFilter = Callable[[Mapping[str, object]], bool]

_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


class WhereError(ValueError):
    """An expression that cannot be used, with a message for the person who typed it."""


def row_filter(expression: str, columns: Iterable[str]) -> RowFilter:
    """Parse ``expression`` once; the returned function tells whether a row (a mapping) matches.

    Names must be among ``columns``, so a typo fails before anything is selected."""
    try:
        tree = ast.parse(expression, mode="eval").body
    except SyntaxError as e:
        raise WhereError(f"--where {expression!r} is not a valid expression: {e.msg}.") from e
    known = set(columns)
    evaluate = _compile(tree, expression, known)
    return lambda row: bool(evaluate(row))


def _compile(node: ast.expr, expression: str, known: set[str]) -> Callable[[Mapping[str, object]], object]:
    if isinstance(node, ast.Constant):
        value = node.value
        return lambda row: value
    if isinstance(node, ast.Name):
        if node.id not in known:
            hint = ", ".join(sorted(known))
            raise WhereError(f"--where {expression!r}: there is no column {node.id!r}. Columns: {hint}.")
        name = node.id
        return lambda row: row.get(name)
    if isinstance(node, (ast.List, ast.Tuple)):
        parts = [_compile(e, expression, known) for e in node.elts]
        return lambda row: [p(row) for p in parts]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        inner = _compile(node.operand, expression, known)
        return lambda row: not inner(row)
    if (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, ast.USub)
        and isinstance(node.operand, ast.Constant)
        and isinstance(node.operand.value, (int, float))
    ):
        value = -node.operand.value
        return lambda row: value
    if isinstance(node, ast.BoolOp):
        parts = [_compile(v, expression, known) for v in node.values]
        if isinstance(node.op, ast.And):
            return lambda row: all(p(row) for p in parts)
        return lambda row: any(p(row) for p in parts)
    if isinstance(node, ast.Compare) and all(type(op) in _COMPARE for op in node.ops):
        operands = [_compile(e, expression, known) for e in (node.left, *node.comparators)]
        ops = [_COMPARE[type(op)] for op in node.ops]
        return lambda row: _chain(row, operands, ops)
    raise WhereError(
        f"--where {expression!r}: {ast.unparse(node)!r} is not supported. Use column names, numbers, quoted "
        "text, comparisons (== != < <= > >= in), and / or / not."
    )


def _chain(row: Mapping[str, object], operands: list, ops: list) -> bool:
    """``a < b < c`` as Python reads it; any null operand makes the comparison false."""
    values = [operand(row) for operand in operands]
    for op, left, right in zip(ops, values, values[1:], strict=False):
        if left is None or right is None:
            return False
        try:
            if not op(left, right):
                return False
        except TypeError:
            return False
    return True
