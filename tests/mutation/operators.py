"""The mutation operators: where a mutant may go in a module, and the byte edits that make it.

Edits replace precise spans (an operator token, a condition, one statement), so the rest of
the file stays byte-identical and tracebacks keep their line numbers. Each candidate also
names the AST node it replaces and the node it should parse to instead, so mutants.py can
prove the edited file is exactly the intended change and never a syntax error that any test
would "kill". Only semantic spots are visited: docstrings, strings, ``__repr__``, logging
calls, annotations and type aliases, ``if TYPE_CHECKING`` and ``assert`` are left alone.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from tests.mutation.syntax import (
    at,
    is_bool_annotation,
    is_logging_call,
    is_main_guard,
    is_text,
    is_type_alias,
    is_type_checking,
    looks_float,
    number_text,
    unparse,
)


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace ``source[start:end]`` (byte offsets) with ``text``."""

    start: int
    end: int
    text: bytes


@dataclass(frozen=True, slots=True)
class Candidate:
    """One mutant before it gets its id: what changes, where, and what it must parse as."""

    scope: str
    operator: str
    original: str
    replacement: str
    lines: tuple[int, ...]  # executing any of these lines reaches the mutant
    edits: tuple[Edit, ...]
    target: ast.AST
    expected: ast.AST


_CMP_FLIP: dict[type[ast.cmpop], tuple[bytes, bytes, type[ast.cmpop]]] = {
    ast.Lt: (rb"<(?!=)", b"<=", ast.LtE),
    ast.LtE: (rb"<=", b"<", ast.Lt),
    ast.Gt: (rb">(?!=)", b">=", ast.GtE),
    ast.GtE: (rb">=", b">", ast.Gt),
    ast.Eq: (rb"==", b"!=", ast.NotEq),
    ast.NotEq: (rb"!=", b"==", ast.Eq),
    ast.In: (rb"\bin\b", b"not in", ast.NotIn),
    ast.NotIn: (rb"\bnot\s+in\b", b"in", ast.In),
    ast.Is: (rb"\bis\b", b"is not", ast.IsNot),
    ast.IsNot: (rb"\bis\s+not\b", b"is", ast.Is),
}
_BIN_TOKEN: dict[type[ast.operator], bytes] = {
    ast.Add: rb"\+",
    ast.Sub: rb"-",
    ast.Mult: rb"\*",
    ast.Div: rb"/",
    ast.FloorDiv: rb"//",
    ast.LShift: rb"<<",
    ast.RShift: rb">>",
    ast.BitOr: rb"\|",
    ast.BitAnd: rb"&",
}
_BIN_TEXT: dict[type[ast.operator], bytes] = {
    ast.Add: b"+",
    ast.Sub: b"-",
    ast.Mult: b"*",
    ast.Div: b"/",
    ast.FloorDiv: b"//",
    ast.LShift: b"<<",
    ast.RShift: b">>",
    ast.BitOr: b"|",
    ast.BitAnd: b"&",
}
_BIN_FLIP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.LShift: ast.RShift,
    ast.RShift: ast.LShift,
    ast.BitOr: ast.BitAnd,
    ast.BitAnd: ast.BitOr,
}
_COMMENT = re.compile(rb"#[^\n]*")


def find(source: bytes, tree: ast.Module) -> list[Candidate]:
    """Every candidate mutant of one module, in no particular order."""
    finder = _Finder(source)
    finder.stmts(tree.body)
    return finder.found


class _Finder:
    """Walks statements then expressions, collecting candidates with their scope."""

    def __init__(self, source: bytes) -> None:
        self.source = source
        self.line_starts = [0] + [m.end() for m in re.finditer(rb"\n", source)]
        self.scope: list[str] = []
        self.returns_bool = False
        self.functions = 0  # nesting depth: type aliases live only at module or class level
        self.stmt_line = 1
        self.found: list[Candidate] = []

    # -- positions ---------------------------------------------------------------------------

    def start(self, node: ast.AST) -> int:
        return self.line_starts[at(node, "lineno") - 1] + at(node, "col_offset")

    def end(self, node: ast.AST) -> int:
        return self.line_starts[at(node, "end_lineno") - 1] + at(node, "end_col_offset")

    def token(self, after: ast.AST, before: ast.AST, pattern: bytes) -> tuple[int, int] | None:
        """The span of the one operator token between two operands (comments blanked out)."""
        lo, hi = self.end(after), self.start(before)
        gap = _COMMENT.sub(lambda m: b" " * len(m.group()), self.source[lo:hi])
        hits = list(re.finditer(pattern, gap))
        if len(hits) != 1:
            return None
        return lo + hits[0].start(), lo + hits[0].end()

    def parenthesised(self, node: ast.AST) -> bool:
        """Directly inside ``(...)``: its own brackets or a call's, either way a fresh context."""
        lo, hi = self.start(node), self.end(node)
        return self.source[lo - 1 : lo] == b"(" and self.source[hi : hi + 1] == b")"

    # -- recording ---------------------------------------------------------------------------

    def add(
        self,
        operator: str,
        target: ast.AST,
        expected: ast.AST,
        edits: list[Edit],
        original: str | None = None,
        replacement: str | None = None,
        lines: set[int] | None = None,
    ) -> None:
        if lines is None:
            first, last = at(target, "lineno"), at(target, "end_lineno")
            lines = {*range(first, last + 1), self.stmt_line}
        self.found.append(
            Candidate(
                scope=".".join(self.scope) or "<module>",
                operator=operator,
                original=unparse(target) if original is None else original,
                replacement=unparse(expected) if replacement is None else replacement,
                lines=tuple(sorted(lines)),
                edits=tuple(edits),
                target=target,
                expected=expected,
            )
        )

    def replace(self, operator: str, target: ast.AST, expected: ast.AST, text: bytes) -> None:
        self.add(operator, target, expected, [Edit(self.start(target), self.end(target), text)])

    # -- statements --------------------------------------------------------------------------

    def stmts(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            saved = self.stmt_line
            self.stmt_line = stmt.lineno
            self.stmt(stmt)
            self.stmt_line = saved

    def stmt(self, node: ast.stmt) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            self.function(node)
        elif isinstance(node, ast.ClassDef):
            self.scope.append(node.name)  # its decorators count as part of it, for stable ids
            for decorator in node.decorator_list:
                self.expr(decorator)
            self.stmts(node.body)
            self.scope.pop()
        elif isinstance(node, ast.If):
            if is_main_guard(node.test):
                return
            if not is_type_checking(node.test):
                self.condition(node.test)
                self.expr(node.test)
                self.stmts(node.body)
            self.stmts(node.orelse)
        elif isinstance(node, ast.While):
            self.condition(node.test)
            self.expr(node.test)
            self.stmts(node.body)
            self.stmts(node.orelse)
        elif isinstance(node, ast.For | ast.AsyncFor):
            self.expr(node.iter)
            self.stmts(node.body)
            self.stmts(node.orelse)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                self.expr(item.context_expr)
            self.stmts(node.body)
        elif isinstance(node, ast.Try | ast.TryStar):
            self.stmts(node.body)
            for handler in node.handlers:
                self.handler(handler)
            self.stmts(node.orelse)
            self.stmts(node.finalbody)
        elif isinstance(node, ast.Match):
            self.expr(node.subject)
            for case in node.cases:
                if case.guard is not None:
                    self.expr(case.guard)
                self.stmts(case.body)
        elif isinstance(node, ast.Expr):
            call = node.value.value if isinstance(node.value, ast.Await) else node.value
            if is_logging_call(call):
                return
            if isinstance(call, ast.Call):
                self.replace("delete", node, ast.Pass(), b"pass")
            self.expr(node.value)
        elif isinstance(node, ast.AugAssign):
            self.replace("delete", node, ast.Pass(), b"pass")
            self.expr(node.value)
        elif isinstance(node, ast.Assign):
            if not (self.functions == 0 and is_type_alias(node)):
                self.expr(node.value)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None and not (self.functions == 0 and is_type_alias(node)):
                self.expr(node.value)
        elif isinstance(node, ast.Return):
            self.returned(node)
        elif isinstance(node, ast.Raise):
            self.replace("delete", node, ast.Pass(), b"pass")
            if node.exc is not None:
                self.expr(node.exc)
        elif isinstance(node, ast.Continue | ast.Break):
            self.replace("delete", node, ast.Pass(), b"pass")

    def function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        if node.name == "__repr__":
            return
        self.scope.append(node.name)  # decorators and defaults count as part of it
        for decorator in node.decorator_list:
            self.expr(decorator)
        for default in [*node.args.defaults, *node.args.kw_defaults]:
            if default is not None:
                self.expr(default)
        saved = self.returns_bool
        self.returns_bool = is_bool_annotation(node.returns)
        self.functions += 1
        self.stmts(node.body)
        self.functions -= 1
        self.scope.pop()
        self.returns_bool = saved

    def handler(self, node: ast.ExceptHandler) -> None:
        """``except E:`` whose body becomes a bare re-raise (the error is no longer handled)."""
        body = node.body
        if not (len(body) == 1 and isinstance(body[0], ast.Raise) and body[0].exc is None):
            head = "except" if node.type is None else f"except {unparse(node.type)}"
            if node.name:
                head += f" as {node.name}"
            expected = ast.ExceptHandler(type=node.type, name=node.name, body=[ast.Raise()])
            lines = set(range(body[0].lineno, at(body[-1], "end_lineno") + 1))
            edit = Edit(self.start(body[0]), self.end(body[-1]), b"raise")
            self.add("except", node, expected, [edit], head, "raise", lines)
        saved = self.stmt_line
        self.stmt_line = node.lineno
        self.stmts(node.body)
        self.stmt_line = saved

    def returned(self, node: ast.Return) -> None:
        value = node.value
        if value is None:
            return
        constant = isinstance(value, ast.Constant) and (
            isinstance(value.value, bool) or value.value is None
        )
        if self.returns_bool and not constant:
            for flag in (True, False):
                self.replace("return", value, ast.Constant(flag), str(flag).encode())
        self.expr(value)

    def condition(self, test: ast.expr) -> None:
        """``if``/``elif``/``while`` conditions forced to True, and separately to False."""
        if isinstance(test, ast.Constant):
            return  # `while True:` and friends: the bool operator covers the constant
        for flag in (True, False):
            self.replace("condition", test, ast.Constant(flag), str(flag).encode())

    # -- expressions -------------------------------------------------------------------------

    def expr(self, node: ast.expr) -> None:
        if is_text(node) or is_logging_call(node):
            return
        if isinstance(node, ast.Compare):
            self.compare(node)
        elif isinstance(node, ast.BoolOp):
            self.boolop(node)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            drop = re.match(rb"not\s*", self.source[self.start(node) :])
            if drop is not None:
                at = self.start(node)
                self.add("not", node, node.operand, [Edit(at, at + drop.end(), b"")])
        elif isinstance(node, ast.Constant):
            self.constant(node)
        elif isinstance(node, ast.BinOp):
            self.binop(node)
        self.children(node)

    def children(self, node: ast.expr) -> None:
        skip_first = isinstance(node, ast.Call) and getattr(node.func, "id", "") == "cast"
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                if skip_first and child in getattr(node, "args", [])[:1]:
                    continue
                self.expr(child)
            elif isinstance(child, ast.keyword):
                if child.arg != "slots":  # dataclass(slots=...) changes memory layout only
                    self.expr(child.value)
            elif isinstance(child, ast.comprehension):
                self.expr(child.iter)
                for cond in child.ifs:
                    self.expr(cond)
            elif isinstance(child, ast.arguments):
                for default in [*child.defaults, *child.kw_defaults]:
                    if default is not None:
                        self.expr(default)

    def compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for i, op in enumerate(node.ops):
            pattern, text, flipped = _CMP_FLIP[type(op)]
            span = self.token(operands[i], operands[i + 1], pattern)
            if span is None:
                continue
            ops = [*node.ops[:i], flipped(), *node.ops[i + 1 :]]
            expected = ast.Compare(left=node.left, ops=ops, comparators=node.comparators)
            self.add("compare", node, expected, [Edit(*span, text)])

    def boolop(self, node: ast.BoolOp) -> None:
        """``and`` <-> ``or`` for the whole chain, so ``a and b and c`` keeps its grouping."""
        is_and = isinstance(node.op, ast.And)
        pattern, text = (rb"\band\b", b"or") if is_and else (rb"\bor\b", b"and")
        edits = []
        for left, right in zip(node.values, node.values[1:], strict=False):
            span = self.token(left, right, pattern)
            if span is None:
                return
            edits.append(Edit(*span, text))
        expected = ast.BoolOp(op=ast.Or() if is_and else ast.And(), values=node.values)
        self.add("logic", node, expected, edits)

    def constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, bool):
            flipped = not value
            self.replace("bool", node, ast.Constant(flipped), str(flipped).encode())
        elif isinstance(value, int | float):
            literal = self.source[self.start(node) : self.end(node)].decode()
            if value + 1 != value:
                self.replace(
                    "number", node, ast.Constant(value + 1), number_text(literal, value + 1)
                )
            if value != 0:
                zero = type(value)(0)
                self.replace("number", node, ast.Constant(zero), number_text(literal, zero))

    def binop(self, node: ast.BinOp) -> None:
        kind = type(node.op)
        if kind not in _BIN_TOKEN or is_text(node.left) or is_text(node.right):
            return
        if kind is ast.Mult:
            floats = [n for n in (node.left, node.right) if looks_float(n)]
            new: type[ast.operator] = ast.Div if floats else ast.FloorDiv
        else:
            new = _BIN_FLIP[kind]
        span = self.token(node.left, node.right, _BIN_TOKEN[kind])
        if span is None:
            return
        edits = [Edit(*span, _BIN_TEXT[new])]
        if {kind, new} == {ast.BitOr, ast.BitAnd}:
            # `|` and `&` bind differently: parenthesise so the tree changes only in the op.
            for part in (node, node.left, node.right):
                atom = isinstance(part, ast.Name | ast.Attribute | ast.Constant | ast.Call) or (
                    isinstance(part, ast.UnaryOp) and not isinstance(part.op, ast.Not)
                )
                if not atom and not self.parenthesised(part):
                    edits += [Edit(self.start(part), self.start(part), b"(")]
                    edits += [Edit(self.end(part), self.end(part), b")")]
        self.add("arith", node, ast.BinOp(left=node.left, op=new(), right=node.right), edits)
