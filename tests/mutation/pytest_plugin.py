"""Loaded into every pytest run the mutation runner starts (``-p``), never into ``make test``.

The runner copies this file next to its work copies under a private module name, because the
tree being mutated need not contain tests/mutation (a baseline worktree, say). So it imports
nothing from the project. It does two things:

- caps the address space at ``MUTATION_MEMORY_LIMIT`` bytes, so a mutant stuck appending
  to a buffer dies of MemoryError rather than taking the machine with it;
- pins Hypothesis (no example database, derandomised, no deadline), so a mutant's verdict
  does not depend on examples saved by an earlier mutant, on luck, or on a slow machine;
- with ``MUTATION_COVERAGE_FILE`` set, records line coverage with the test's node id as the
  dynamic context, for the runner's line -> tests map;
- with ``MUTATION_REPORT_FILE`` set, writes the collection order and each test's duration
  (setup to teardown) there, so the runner can run cheap test modules first.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator
from typing import Any

import pytest

_state: dict[str, Any] = {"coverage": None, "order": [], "durations": {}}


def _pin_hypothesis() -> None:
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # a project without hypothesis: nothing to pin
        return
    settings.register_profile(
        "mutation",
        database=None,
        derandomize=True,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    settings.load_profile("mutation")


def _cap_memory() -> None:
    limit = os.environ.get("MUTATION_MEMORY_LIMIT")
    if not limit:
        return
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    soft = int(limit) if hard == resource.RLIM_INFINITY else min(int(limit), hard)
    resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: Any, args: Any) -> None:
    """As early as a plugin can run: before any conftest or test module imports the app."""
    _cap_memory()
    _pin_hypothesis()
    data_file = os.environ.get("MUTATION_COVERAGE_FILE")
    if data_file:
        import coverage

        include = os.environ["MUTATION_COVERAGE_INCLUDE"].split(os.pathsep)
        cov = coverage.Coverage(data_file=data_file, include=include, config_file=False)
        cov.start()
        _state["coverage"] = cov


def pytest_collection_finish(session: pytest.Session) -> None:
    _state["order"] = [item.nodeid for item in session.items]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    """Setup, call and teardown of one test all count under its node id."""
    cov = _state["coverage"]
    if cov is not None:
        cov.switch_context(item.nodeid)
    start = time.perf_counter()
    try:
        return (yield)
    finally:
        _state["durations"][item.nodeid] = time.perf_counter() - start
        if cov is not None:
            cov.switch_context("")


def pytest_unconfigure(config: pytest.Config) -> None:
    cov = _state["coverage"]
    if cov is not None:
        cov.stop()
        cov.save()
    report_file = os.environ.get("MUTATION_REPORT_FILE")
    if report_file:
        with open(report_file, "w", encoding="utf-8") as out:
            json.dump({"order": _state["order"], "durations": _state["durations"]}, out)
