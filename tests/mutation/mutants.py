"""Mutants with stable ids, checked to be exactly the change they claim to be.

An id is ``path::scope::operator::original->replacement::#k``: the scope is the dotted name
of the enclosing function (``<module>`` outside any), original and replacement are the
normalised source of the node before and after, and k counts earlier mutants in the same
scope with the same operator, original and replacement. Edits elsewhere in the file, or a
reformat, leave it unchanged, so equivalent.toml and ``--ids`` files stay valid.
"""

from __future__ import annotations

import ast
import warnings
from collections import Counter
from dataclasses import dataclass, replace

from tests.mutation.operators import Candidate, Edit, find


@dataclass(frozen=True, slots=True)
class Mutant:
    """One small change to one source file."""

    path: str
    scope: str
    operator: str
    original: str
    replacement: str
    index: int
    line: int
    lines: tuple[int, ...]
    edits: tuple[Edit, ...]

    @property
    def id(self) -> str:
        change = f"{self.original}->{self.replacement}"
        return f"{self.path}::{self.scope}::{self.operator}::{change}::#{self.index}"

    def apply(self, source: bytes) -> bytes:
        """``source`` with this mutant's edits made (right to left, so offsets stay valid)."""
        for edit in sorted(self.edits, key=lambda e: (e.start, e.end), reverse=True):
            source = source[: edit.start] + edit.text + source[edit.end :]
        return source

    def diff(self, source: bytes) -> tuple[str, str]:
        """The touched source lines before and after, each collapsed onto one line."""
        first = min(e.start for e in self.edits)
        last = max(e.end for e in self.edits)
        lo = source.rfind(b"\n", 0, first) + 1
        hi = source.find(b"\n", last)
        hi = len(source) if hi < 0 else hi
        before = source[lo:hi]
        shifted = [Edit(e.start - lo, e.end - lo, e.text) for e in self.edits]
        after = replace(self, edits=tuple(shifted)).apply(before)
        return _one_line(before), _one_line(after)


def _one_line(text: bytes) -> str:
    return " ".join(text.decode("utf-8", "replace").split())


def generate(path: str, source: bytes) -> list[Mutant]:
    """Every mutant of one file, in source order. Candidates whose edit would not parse to
    exactly the intended tree are dropped with a warning (a bug in an operator, not a kill)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        tree = ast.parse(source, filename=path)
    finder_order = sorted(find(source, tree), key=_position)
    seen_edits: set[tuple[Edit, ...]] = set()
    counts: Counter[tuple[str, str, str, str]] = Counter()
    mutants: list[Mutant] = []
    for cand in finder_order:
        if cand.edits in seen_edits:
            continue
        seen_edits.add(cand.edits)
        key = (cand.scope, cand.operator, cand.original, cand.replacement)
        mutant = Mutant(
            path=path,
            scope=cand.scope,
            operator=cand.operator,
            original=cand.original,
            replacement=cand.replacement,
            index=counts[key],
            line=source.count(b"\n", 0, min(e.start for e in cand.edits)) + 1,
            lines=cand.lines,
            edits=cand.edits,
        )
        counts[key] += 1
        if not _parses_as_intended(tree, source, cand, mutant):
            warnings.warn(f"operator bug, mutant dropped: {mutant.id}", stacklevel=2)
            continue
        mutants.append(mutant)
    return mutants


def _position(cand: Candidate) -> tuple[int, int, str, str]:
    return (
        min(e.start for e in cand.edits),
        max(e.end for e in cand.edits),
        cand.operator,
        cand.replacement,
    )


def _parses_as_intended(tree: ast.Module, source: bytes, cand: Candidate, mutant: Mutant) -> bool:
    """The mutated file parses, and its top-level statement holding the mutant equals the
    original one with just the target node swapped for the expected node."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            mutated = ast.parse(mutant.apply(source))
    except SyntaxError:
        return False
    if len(mutated.body) != len(tree.body):
        return False
    line: int = getattr(cand.target, "lineno", 0)
    for old, new in zip(tree.body, mutated.body, strict=True):
        if _first_line(old) <= line <= (old.end_lineno or old.lineno):
            return _shape(old, {id(cand.target): cand.expected}) == _shape(new, {})
    return False


def _first_line(stmt: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(stmt, "decorator_list", [])
    return min([stmt.lineno, *(d.lineno for d in decorators)])


def _shape(node: object, swap: dict[int, ast.AST]) -> object:
    """A comparable value for a tree, positions left out. Nested ``and``/``or`` chains of the
    same operator are flattened, since ``a or (b or c)`` and ``a or b or c`` mean the same."""
    if isinstance(node, list):
        return tuple(_shape(item, swap) for item in node)
    if not isinstance(node, ast.AST):
        return node
    node = swap.get(id(node), node)
    if isinstance(node, ast.Constant):
        return ("Constant", type(node.value).__name__, node.value)
    if isinstance(node, ast.BoolOp):
        values: list[object] = []
        for child in node.values:
            value = swap.get(id(child), child)
            if isinstance(value, ast.BoolOp) and type(value.op) is type(node.op):
                values.extend(_shape(value, swap)[2])  # type: ignore[index]
            else:
                values.append(_shape(value, swap))
        return ("BoolOp", type(node.op).__name__, tuple(values))
    fields = (_shape(getattr(node, name, None), swap) for name in node._fields)
    return (type(node).__name__, *fields)
