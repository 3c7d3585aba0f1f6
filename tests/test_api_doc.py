"""docs/api.md names every method the holder serves and every param of each, and nothing the
holder does not serve (the CLI's parser is the source: a command added or an option renamed
without the document fails here)."""

from __future__ import annotations

import re
from pathlib import Path

from app.cli import GLOBAL_OPTIONS, LOCAL_ONLY, CommandParser, api_commands

DOC = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()


def params_of(sub: CommandParser) -> set[str]:
    names = {a.dest for a, _ in sub.options if a.dest not in GLOBAL_OPTIONS}
    if sub.subcommand_dest:
        names.add(sub.subcommand_dest)
        for nested in sub.subcommands.values():
            names |= params_of(nested)
    return names


def method_rows() -> dict[str, str]:
    rows = {}
    for line in DOC.splitlines():
        found = re.match(r"\| `([a-z.-]+)` \|(.*)", line)
        if found:
            rows[found.group(1)] = found.group(2)
    return rows


def test_every_method_and_param_is_documented() -> None:
    rows = method_rows()
    served = {name: sub for name, sub in api_commands().items() if name not in LOCAL_ONLY}
    for name, sub in served.items():
        assert name in rows, f"method {name} is not in docs/api.md"
        for param in params_of(sub):
            assert f"`{param}`" in rows[name], f"{name}: param {param} is not documented"
    documented = {m for m in rows if m not in {"event", "note", "window.raise"}}
    assert documented == set(served), documented ^ set(served)
