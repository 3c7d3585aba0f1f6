"""Small questions about syntax trees that the mutation operators ask.

Kept apart from operators.py so the list of what counts as "not semantic" (logging calls,
type aliases, ``TYPE_CHECKING``, the ``__main__`` guard) can be read and extended in one place.
"""

from __future__ import annotations

import ast
import re

_LOG_METHODS = frozenset({"debug", "info", "warning", "warn", "error", "exception", "critical"})
_CAPWORDS = re.compile(r"_?[A-Z][a-z0-9]+(?:[A-Z][a-z0-9]*)*")


def at(node: ast.AST, name: str) -> int:
    """A position attribute (lineno, end_col_offset...) of a node parsed from source."""
    value = getattr(node, name, None)
    if not isinstance(value, int):
        raise TypeError(f"{type(node).__name__} node has no {name}")
    return value


def unparse(node: ast.AST) -> str:
    """Canonical one-line source, so ids survive reformatting (0x80 and 128 read alike)."""
    return " ".join(ast.unparse(node).split())


def is_logging_call(node: ast.expr) -> bool:
    """``log.info(...)``, ``self._logger.warning(...)``, ``logging.debug(...)`` and the like."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return False
    func = node.func
    if func.attr not in _LOG_METHODS and func.attr != "log":
        return False
    base = func.value
    name = base.id if isinstance(base, ast.Name) else getattr(base, "attr", "")
    return "log" in name.lower()


def is_bool_annotation(node: ast.expr | None) -> bool:
    """``-> bool``: such a function's ``return x`` also becomes ``return True``/``False``."""
    return (isinstance(node, ast.Name) and node.id == "bool") or (
        isinstance(node, ast.Constant) and node.value == "bool"
    )


def is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` imports exist only for the type checker."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def is_main_guard(test: ast.expr) -> bool:
    """``if __name__ == "__main__":`` runs only as a script, never under the tests."""
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Name)
        and test.left.id == "__name__"
    )


def is_type_alias(stmt: ast.stmt) -> bool:
    """``Payload = A | B`` or ``SendFn = Callable[...]``: CapWords names typing values."""
    if isinstance(stmt, ast.AnnAssign):
        ann = stmt.annotation
        return getattr(ann, "id", getattr(ann, "attr", "")) == "TypeAlias"
    if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
        return False
    target = stmt.targets[0]
    return (
        isinstance(target, ast.Name)
        and _CAPWORDS.fullmatch(target.id) is not None
        and isinstance(stmt.value, ast.BinOp | ast.Subscript | ast.Name | ast.Attribute)
    )


def is_text(node: ast.expr) -> bool:
    """String and bytes literals (and f-strings): messages and labels, never mutated."""
    return isinstance(node, ast.JoinedStr) or (
        isinstance(node, ast.Constant) and isinstance(node.value, str | bytes)
    )


def number_text(source: str, value: int | float) -> bytes:
    """``value`` spelled the way the original literal was (hex stays hex, 16_000 keeps _)."""
    if isinstance(value, float):
        return repr(value).encode()
    low = source.lower()
    for prefix, spec in (("0x", "x"), ("0o", "o"), ("0b", "b")):
        if low.startswith(prefix):
            upper = spec == "x" and any(c in "ABCDEF" for c in source[2:])
            digits = format(value, spec.upper() if upper else spec)
            return (source[:2] + digits).encode()
    return (f"{value:_}" if "_" in source else str(value)).encode()


def looks_float(node: ast.expr) -> bool:
    """A float literal or ``float(...)``: then ``*`` becomes ``/`` rather than ``//``."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, float)
    return isinstance(node, ast.Call) and getattr(node.func, "id", "") == "float"
