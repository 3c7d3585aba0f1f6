"""One mutation run: copies, sanity check, baselines, coverage map, then every mutant.

Work is spread over ``jobs`` private copies of the repository; a copy is borrowed for one
task (a baseline, a covered run, one mutant) and handed back restored.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tests.mutation.coverage_map import LineMap, measure, read_report
from tests.mutation.mutants import Mutant
from tests.mutation.report import Outcome
from tests.mutation.targets import Target
from tests.mutation.workspace import RunResult, Workspace, install_plugin

T = TypeVar("T")
MIN_TIMEOUT = 10.0
TIMEOUT_FACTOR = 4.0
_BROKEN = b'raise ImportError("mutation runner sanity check: the copy must be what runs")\n'


class SetupError(RuntimeError):
    """The un-mutated tests cannot serve as a reference; the message says why."""


@dataclass(slots=True)
class Group:
    """Test paths shared by some targets, with what was learnt by running them un-mutated."""

    tests: tuple[str, ...]
    sources: list[str]
    seconds: float = 0.0
    durations: dict[str, float] = field(default_factory=dict)
    lines: LineMap | None = None

    def timeout(self, tests: list[str] | None = None) -> float:
        """max(10 s, 4 x the un-mutated time of these tests): the whole group's measured time,
        or for a selection the sum of its tests' durations plus the group's start-up cost."""
        baseline = self.seconds
        if tests is not None and tests != list(self.tests):
            if not all(nodeid in self.durations for nodeid in tests):
                return max(MIN_TIMEOUT, TIMEOUT_FACTOR * self.seconds)
            startup = max(0.0, self.seconds - sum(self.durations.values()))
            baseline = startup + sum(self.durations[nodeid] for nodeid in tests)
        return max(MIN_TIMEOUT, TIMEOUT_FACTOR * baseline)


@dataclass(slots=True)
class Pool:
    """``jobs`` work copies of one snapshot of the repository, lent out one task at a time."""

    root: Path
    jobs: int
    scratch: Path = field(init=False)
    copies: queue.Queue[Workspace] = field(init=False)
    first: Workspace = field(init=False)

    def __post_init__(self) -> None:
        self.scratch = Path(tempfile.mkdtemp(prefix="anonchat-mutation-"))
        try:
            plugin_dir = install_plugin(self.scratch / "plugin")
            self.first = Workspace.create(self.root, self.scratch / "copy0", plugin_dir)
            self.copies = queue.Queue()
            self.copies.put(self.first)
            for i in range(1, self.jobs):
                self.copies.put(self.first.clone(self.scratch / f"copy{i}"))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Remove the copies and everything the runs left in the scratch directory."""
        shutil.rmtree(self.scratch, ignore_errors=True)

    @contextmanager
    def borrow(self) -> Iterator[Workspace]:
        ws = self.copies.get()
        try:
            yield ws
        finally:
            self.copies.put(ws)

    def map(self, tasks: list[Callable[[Workspace], T]]) -> Iterator[T]:
        """Run the tasks on the copies, yielding results as they finish."""

        def borrowed(task: Callable[[Workspace], T]) -> T:
            with self.borrow() as ws:
                return task(ws)

        with ThreadPoolExecutor(max_workers=self.jobs) as executor:
            futures: list[Future[T]] = [executor.submit(borrowed, task) for task in tasks]
            try:
                for future in as_completed(futures):
                    yield future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                Workspace.kill_all()
                raise


def groups_for(targets: list[Target], mutants: list[Mutant]) -> dict[str, Group]:
    """Source path -> the group of test paths its mutants run against."""
    by_tests: dict[tuple[str, ...], Group] = {}
    wanted = {m.path for m in mutants}
    for target in targets:
        if target.path in wanted:
            group = by_tests.setdefault(target.tests, Group(target.tests, []))
            group.sources.append(target.path)
    return {src: group for group in by_tests.values() for src in group.sources}


def prepare(pool: Pool, groups: list[Group], echo: Callable[[str], None]) -> None:
    """Per group: a broken copy must fail (the copy is what gets imported), the un-mutated
    tests must pass (timed, for the timeout), and a covered run maps lines to tests."""

    def sanity(group: Group) -> Callable[[Workspace], None]:
        def task(ws: Workspace) -> None:
            broken = _package_roots(ws, group.sources)
            originals = {src: ws.read(src) for src in broken}
            for src in broken:
                ws.write(src, _BROKEN)
            try:
                result = ws.pytest(list(group.tests), timeout=300)
            finally:
                for src, data in originals.items():
                    ws.write(src, data)
            tests = " ".join(group.tests)
            if result.code == 0:
                raise SetupError(
                    f"{tests} pass with {', '.join(broken)} broken in the work copy: they "
                    "import another copy of the code (the editable install?) or none at all"
                )
            echo(f"sanity {tests}: fails with {', '.join(broken)} broken, as it must")

        return task

    def baseline(group: Group, i: int) -> Callable[[Workspace], None]:
        def task(ws: Workspace) -> None:
            report = pool.scratch / f"baseline{i}.json"
            result = ws.pytest(list(group.tests), env={"MUTATION_REPORT_FILE": str(report)})
            if result.code != 0:
                raise SetupError(_failed(group, result, "un-mutated"))
            group.seconds = result.seconds
            group.durations = read_report(report)[1]
            echo(
                f"baseline {' '.join(group.tests)}: {len(group.durations)} tests passed in "
                f"{result.seconds:.1f} s (whole-folder mutant timeout {group.timeout():.0f} s)"
            )

        return task

    def covered(group: Group, i: int) -> Callable[[Workspace], None]:
        def task(ws: Workspace) -> None:
            group.lines = measure(ws, group.tests, group.sources, pool.scratch / f"cov{i}")
            echo(f"coverage {' '.join(group.tests)}: {len(group.lines.order)} tests mapped")

        return task

    tasks: list[Callable[[Workspace], None]] = [sanity(g) for g in groups]
    tasks += [baseline(g, i) for i, g in enumerate(groups)]
    tasks += [covered(g, i) for i, g in enumerate(groups)]
    for _ in pool.map(tasks):
        pass
    for group in groups:
        if group.lines is not None:
            group.lines.durations = group.durations


def _package_roots(ws: Workspace, sources: list[str]) -> list[str]:
    """The top-level ``__init__.py`` above each source (or the source itself): whatever the
    tests import from there runs it, so breaking it must make them fail."""
    roots: list[str] = []
    for src in sources:
        top = src.split("/", 1)[0] + "/__init__.py"
        root = top if "/" in src and (ws.path / top).is_file() else src
        if root not in roots:
            roots.append(root)
    return roots


def _failed(group: Group, result: RunResult, what: str) -> str:
    return (
        f"the {what} tests fail in the work copy, so no mutant can be judged "
        f"({' '.join(group.tests)}, exit {result.code}):\n{result.output}"
    )


def mutant_task(
    mutant: Mutant, source: bytes, group: Group, tests: list[str]
) -> Callable[[Workspace], Outcome]:
    """Write the mutant into a copy, run the selected tests, restore the original bytes."""
    before, after = mutant.diff(source)
    whole = list(group.tests)

    def task(ws: Workspace) -> Outcome:
        ws.write(mutant.path, mutant.apply(source))
        ran = tests
        try:
            result = ws.pytest(ran, timeout=group.timeout(ran))
            if result.code in (4, 5) and ran != whole:
                # Usage error / nothing collected: a node id pytest cannot resolve (the mutant
                # may have changed a parametrisation). Fall back to the whole folder.
                ran = whole
                result = ws.pytest(ran, timeout=group.timeout())
        finally:
            ws.write(mutant.path, source)
        status = "timeout" if result.code is None else "survived" if result.code == 0 else "killed"
        count = len(group.lines.order) if ran == whole and group.lines else len(ran)
        return Outcome(mutant, status, before, after, result.seconds, count)

    return task


def run_mutants(
    pool: Pool,
    work: list[tuple[Mutant, Group, list[str]]],
    sources: dict[str, bytes],
    echo: Callable[[str], None],
) -> list[Outcome]:
    """Every mutant that some test executes, with a progress line as each finishes."""
    tasks = [mutant_task(m, sources[m.path], g, tests) for m, g, tests in work]
    outcomes: list[Outcome] = []
    width = len(str(len(tasks)))
    for outcome in pool.map(tasks):
        outcomes.append(outcome)
        m = outcome.mutant
        echo(
            f"[{len(outcomes):>{width}}/{len(tasks)}] {outcome.status:<8} {m.path}:{m.line} "
            f"{m.operator} ({outcome.tests} tests, {outcome.seconds:.1f} s)"
        )
    return outcomes
