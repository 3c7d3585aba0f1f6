"""Command line of the mutation runner: choose mutants, run them, report, set the exit code.

Exit status: 0 when the score reaches ``--fail-under``, 1 when it does not, 2 when nothing
could be judged (bad options, the un-mutated tests fail, the work copy is not what runs).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from tests.mutation.coverage_map import CoverageRunFailed
from tests.mutation.mutants import Mutant, generate
from tests.mutation.report import (
    Outcome,
    load_equivalents,
    print_report,
    read_ids,
    summarize,
    write_json,
)
from tests.mutation.runner import Group, Pool, SetupError, groups_for, prepare, run_mutants
from tests.mutation.targets import Target, resolve

DEFAULT_ROOT = Path(__file__).resolve().parents[2]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.mutation",
        description="Mutate app/ and relay/ sources and run each against its own test folder.",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="PATH",
        help="limit to this source file or directory (repeatable)",
    )
    parser.add_argument("--list", action="store_true", help="print the mutants, run nothing")
    parser.add_argument("--max", type=int, metavar="N", help="run at most the first N mutants")
    parser.add_argument(
        "--jobs",
        type=int,
        default=2,
        metavar="N",
        help="work copies and parallel test runs (default 2)",
    )
    parser.add_argument(
        "--ids",
        type=Path,
        metavar="FILE",
        help="run just these ids (one a line, or an earlier results .json: "
        "its survivors and uncovered)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="JSON results (default ROOT/.mutation/results.json)",
    )
    parser.add_argument(
        "--fail-under",
        type=float,
        default=0.90,
        metavar="SCORE",
        help="exit 1 when the score is below this (default 0.90)",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=DEFAULT_ROOT,
        help="the checkout to mutate (default: the one holding this tool)",
    )
    args = parser.parse_args(argv)
    if args.jobs < 1 or (args.max is not None and args.max < 0):
        parser.error("--jobs must be at least 1 and --max not negative")
    return args


def echo(text: str) -> None:
    print(text, flush=True)


def select(args: argparse.Namespace, targets: list[Target], mutants: list[Mutant]) -> list[Mutant]:
    """Apply --only, --ids and --max, in that order; unknown names are errors or warnings."""
    chosen = mutants
    if args.only:
        prefixes = [p.rstrip("/") for p in args.only]
        for prefix in prefixes:
            if not any(t.path == prefix or t.path.startswith(prefix + "/") for t in targets):
                print(
                    f"--only {prefix}: not a target in tests/mutation/targets.py", file=sys.stderr
                )
                raise SystemExit(2)
        chosen = [
            m for m in chosen if any(m.path == p or m.path.startswith(p + "/") for p in prefixes)
        ]
    if args.ids:
        wanted = read_ids(args.ids)
        known = {m.id for m in mutants}
        for mutant_id in wanted:
            if mutant_id not in known:
                print(f"warning: --ids names a mutant not generated: {mutant_id}", file=sys.stderr)
        keep = set(wanted)
        chosen = [m for m in chosen if m.id in keep]
    if args.max is not None:
        chosen = chosen[: args.max]
    return chosen


def list_mutants(mutants: list[Mutant], sources: dict[str, bytes], equivalent: set[str]) -> int:
    for m in mutants:
        before, after = m.diff(sources[m.path])
        mark = "  [equivalent]" if m.id in equivalent else ""
        print(f"{m.path}:{m.line}  {m.id}{mark}\n    {before}  ->  {after}")
    per_file = Counter(m.path for m in mutants)
    print()
    for path, count in per_file.items():
        print(f"{count:6d}  {path}")
    print(f"{len(mutants):6d}  total")
    eq = sum(m.id in equivalent for m in mutants)
    print(json.dumps({"mutants": len(mutants), "equivalent": eq, "files": dict(per_file)}))
    return 0


def stale_ids(equivalents: dict[str, str], mutants: list[Mutant]) -> list[str]:
    """Listed as equivalent but no longer generated: the code moved on, the entry should go."""
    generated = {m.id for m in mutants}
    return [mutant_id for mutant_id in equivalents if mutant_id not in generated]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.monotonic()
    root = args.root.resolve()
    targets = resolve(root)
    try:
        equivalents = load_equivalents()
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.list:
        sources = {t.path: (root / t.path).read_bytes() for t in targets}
        mutants = [m for t in targets for m in generate(t.path, sources[t.path])]
        for mutant_id in stale_ids(equivalents, mutants):
            print(f"warning: equivalent.toml lists a stale id: {mutant_id}", file=sys.stderr)
        return list_mutants(select(args, targets, mutants), sources, set(equivalents))
    pool = Pool(root, args.jobs)
    try:
        return run(args, root, targets, equivalents, pool, started)
    except (SetupError, CoverageRunFailed) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: test runs stopped, work copies removed, no results written")
        return 130
    finally:
        pool.close()


def run(
    args: argparse.Namespace,
    root: Path,
    targets: list[Target],
    equivalents: dict[str, str],
    pool: Pool,
    started: float,
) -> int:
    # Mutate the snapshot in the work copies, not the live tree someone may be editing.
    sources = {t.path: pool.first.read(t.path) for t in targets}
    mutants = [m for t in targets for m in generate(t.path, sources[t.path])]
    stale = stale_ids(equivalents, mutants)
    chosen = select(args, targets, mutants)
    outcomes: list[Outcome] = []
    to_run: list[Mutant] = []
    for m in chosen:
        if m.id in equivalents:
            outcomes.append(Outcome(m, "equivalent", *m.diff(sources[m.path])))
        else:
            to_run.append(m)
    by_source = groups_for(targets, to_run)
    groups = list({id(g): g for g in by_source.values()}.values())
    echo(
        f"{len(chosen)} mutants ({len(chosen) - len(to_run)} equivalent) in "
        f"{len({m.path for m in chosen})} files, {args.jobs} work copies under {pool.scratch}"
    )
    prepare(pool, groups, echo)
    work: list[tuple[Mutant, Group, list[str]]] = []
    for m in to_run:
        group = by_source[m.path]
        assert group.lines is not None
        tests = group.lines.select(m.path, m.lines)
        if tests is None:
            outcomes.append(Outcome(m, "not_covered", *m.diff(sources[m.path])))
        else:
            work.append((m, group, tests))
    echo(f"{len(work)} mutants to run, {len(to_run) - len(work)} not covered by any test")
    outcomes += run_mutants(pool, work, sources, echo)
    return finish(args, root, targets, outcomes, stale, groups, started)


def finish(
    args: argparse.Namespace,
    root: Path,
    targets: list[Target],
    outcomes: list[Outcome],
    stale: list[str],
    groups: list[Group],
    started: float,
) -> int:
    rank = {t.path: i for i, t in enumerate(targets)}

    def position(outcome: Outcome) -> tuple[int, int, str]:
        return rank[outcome.mutant.path], outcome.mutant.line, outcome.mutant.id

    outcomes.sort(key=position)
    summary = summarize(outcomes)
    seconds = time.monotonic() - started
    print_report(outcomes, summary, stale, seconds, sys.stdout)
    out = args.out or root / ".mutation" / "results.json"
    extra: dict[str, object] = {
        "root": str(root),
        "seconds": round(seconds, 1),
        "jobs": args.jobs,
        "baseline": {" ".join(g.tests): round(g.seconds, 2) for g in groups},
        "stale_equivalents": stale,
    }
    write_json(out, outcomes, summary, extra)
    print(f"results: {out}")
    print(summary.line(), flush=True)
    return 1 if summary.score < args.fail_under else 0
