"""Verdicts, the equivalent-mutant list, the console report and the JSON results.

The score is killed / (generated - equivalent): a mutant no test executes counts against it
like a survivor, but is listed apart, because the fix differs (a test that reaches the code,
versus an assertion that notices the change).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tests.mutation.mutants import Mutant

EQUIVALENT_FILE = Path(__file__).with_name("equivalent.toml")
STATUSES = ("killed", "timeout", "survived", "not_covered", "equivalent")
_WIDTH = 160


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one mutant. A timeout counts as killed."""

    mutant: Mutant
    status: str
    before: str
    after: str
    seconds: float = 0.0
    tests: int = 0


@dataclass(frozen=True, slots=True)
class Summary:
    mutants: int
    killed: int
    survived: int
    not_covered: int
    equivalent: int
    timeouts: int

    @property
    def score(self) -> float:
        scored = self.mutants - self.equivalent
        return self.killed / scored if scored else 1.0

    def line(self) -> str:
        """The one JSON object a script reads from the last line of stdout."""
        return json.dumps(
            {
                "mutants": self.mutants,
                "killed": self.killed,
                "survived": self.survived,
                "not_covered": self.not_covered,
                "equivalent": self.equivalent,
                "score": round(self.score, 4),
            }
        )


def load_equivalents(path: Path = EQUIVALENT_FILE) -> dict[str, str]:
    """id -> reason, from ``[[equivalent]]`` tables that each need an ``id`` and a ``why``."""
    if not path.exists():
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    for entry in data.get("equivalent", []):
        mutant_id, why = entry.get("id"), entry.get("why")
        if not isinstance(mutant_id, str) or not isinstance(why, str) or not why.strip():
            raise ValueError(f"{path}: every [[equivalent]] needs an id and a why: {entry!r}")
        found[mutant_id] = why
    return found


def summarize(outcomes: Iterable[Outcome]) -> Summary:
    counts = dict.fromkeys(STATUSES, 0)
    for outcome in outcomes:
        counts[outcome.status] += 1
    return Summary(
        mutants=sum(counts.values()),
        killed=counts["killed"] + counts["timeout"],
        survived=counts["survived"],
        not_covered=counts["not_covered"],
        equivalent=counts["equivalent"],
        timeouts=counts["timeout"],
    )


def _clip(text: str) -> str:
    return text if len(text) <= _WIDTH else text[: _WIDTH - 3] + "..."


def _section(title: str, outcomes: list[Outcome], out: TextIO) -> None:
    if not outcomes:
        return
    print(f"\n{title} ({len(outcomes)})", file=out)
    current = ""
    for outcome in outcomes:
        mutant = outcome.mutant
        if mutant.path != current:
            current = mutant.path
            print(f"\n  {current}", file=out)
        print(f"    {mutant.id}", file=out)
        print(f"      {mutant.path}:{mutant.line}: {_clip(outcome.before)}", file=out)
        print(
            f"      {' ' * len(f'{mutant.path}:{mutant.line}:')} -> {_clip(outcome.after)}",
            file=out,
        )


def print_report(
    outcomes: list[Outcome], summary: Summary, stale: list[str], seconds: float, out: TextIO
) -> None:
    """Survivors and uncovered mutants by file, stale equivalents, then the summary."""
    _section("Survived", [o for o in outcomes if o.status == "survived"], out)
    _section("Not covered by any test", [o for o in outcomes if o.status == "not_covered"], out)
    for mutant_id in stale:
        print(
            f"\nwarning: equivalent.toml lists a mutant no longer generated: {mutant_id}", file=out
        )
    scored = summary.mutants - summary.equivalent
    print(
        f"\nmutants {summary.mutants}, killed {summary.killed} "
        f"(of which {summary.timeouts} by timeout), survived {summary.survived}, "
        f"not covered {summary.not_covered}, equivalent {summary.equivalent}\n"
        f"score {summary.killed}/{scored} = {summary.score:.1%} in {seconds:.0f} s",
        file=out,
    )


def write_json(
    path: Path, outcomes: list[Outcome], summary: Summary, extra: dict[str, object]
) -> None:
    """Every verdict, for scripts and for ``--ids`` reruns of the survivors."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        **extra,
        "summary": {**json.loads(summary.line()), "timeouts": summary.timeouts},
        "mutants": [
            {
                "id": o.mutant.id,
                "file": o.mutant.path,
                "line": o.mutant.line,
                "operator": o.mutant.operator,
                "status": o.status,
                "before": o.before,
                "after": o.after,
                "tests": o.tests,
                "seconds": round(o.seconds, 2),
            }
            for o in outcomes
        ],
    }
    path.write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")


def read_ids(path: Path) -> list[str]:
    """Ids to run: one per line (``#`` comments allowed), or the survivors and uncovered
    mutants of an earlier results JSON."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        wanted = {"survived", "not_covered"}
        return [m["id"] for m in json.loads(text)["mutants"] if m["status"] in wanted]
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]
