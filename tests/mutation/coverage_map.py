"""Which tests run which lines: one covered run per test folder, then per-mutant selection.

Running a whole folder for every mutant would spend most of the time on tests that never
reach the changed line. The covered run records each line with the node ids of the tests
that executed it (pytest_plugin.py switches coverage's dynamic context per test). A line run
outside any test (module import, class bodies, default values) may matter to every test, so
a mutant there runs the whole folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import coverage

from tests.mutation.workspace import Workspace


class CoverageRunFailed(RuntimeError):
    """The un-mutated tests failed under coverage; the map would be meaningless."""


@dataclass(slots=True)
class LineMap:
    """Line -> tests for the target files of one group of test paths."""

    tests: tuple[str, ...]  # the group's test paths: the "whole folder" selection
    order: list[str] = field(default_factory=list)
    lines: dict[str, dict[int, set[str]]] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)  # un-mutated, per node id

    def select(self, path: str, lines: Iterable[int]) -> list[str] | None:
        """The tests to run for a mutant on these lines; None when no test executes any of
        them (the mutant is "not covered").

        Whole modules keep their own order (fixtures and any reliance on it stay intact), but
        the target's own test modules (``test_payload*.py`` for ``payload.py``) run first, then
        the modules whose selected tests are cheapest: with ``-x`` a mutant is usually dead
        after its first failing test. A line run at import time (a module constant) is run by
        every test, so it selects the whole folder, in the same order.
        """
        by_line = self.lines.get(path, {})
        contexts: set[str] = set()
        for line in lines:
            contexts |= by_line.get(line, set())
        if not contexts:
            return None
        if "" in contexts:
            if not self.order:
                return list(self.tests)
            contexts = set(self.order)
        stem = "test_" + Path(path).stem
        rank = {nodeid: i for i, nodeid in enumerate(self.order)}
        cost: dict[str, float] = {}
        for nodeid in contexts:
            module = nodeid.split("::", 1)[0]
            cost[module] = cost.get(module, 0.0) + self.durations.get(nodeid, 0.0)

        def position(nodeid: str) -> tuple[bool, float, str, int, str]:
            module = nodeid.split("::", 1)[0]
            own = Path(module).name.startswith(stem)
            return not own, cost[module], module, rank.get(nodeid, len(rank)), nodeid

        return sorted(contexts, key=position)


def read_report(path: Path) -> tuple[list[str], dict[str, float]]:
    """Collection order and per-test seconds, as pytest_plugin.py wrote them."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return list(data["order"]), {str(k): float(v) for k, v in data["durations"].items()}


def measure(ws: Workspace, tests: tuple[str, ...], sources: list[str], scratch: Path) -> LineMap:
    """Run ``tests`` once in ``ws`` under coverage, recording the lines of ``sources``."""
    scratch.mkdir(parents=True, exist_ok=True)
    data_file = scratch / "coverage.db"
    report_file = scratch / "covered.json"
    include = [str((ws.path / rel).resolve()) for rel in sources]
    env = {
        "MUTATION_COVERAGE_FILE": str(data_file),
        "MUTATION_COVERAGE_INCLUDE": os.pathsep.join(include),
        "MUTATION_REPORT_FILE": str(report_file),
        "COVERAGE_CORE": "ctrace",  # sys.monitoring cannot record dynamic contexts
    }
    result = ws.pytest(list(tests), env=env)
    if result.code != 0:
        raise CoverageRunFailed(
            f"{' '.join(tests)} failed under coverage (exit {result.code}):\n{result.output}"
        )
    line_map = LineMap(tests, order=read_report(report_file)[0])
    data = coverage.CoverageData(basename=str(data_file))
    data.read()
    base = ws.path.resolve()
    for filename in data.measured_files():
        try:
            rel = Path(filename).resolve().relative_to(base).as_posix()
        except ValueError:
            continue
        by_line = data.contexts_by_lineno(filename)
        line_map.lines[rel] = {line: set(ctxs) for line, ctxs in by_line.items()}
    return line_map
