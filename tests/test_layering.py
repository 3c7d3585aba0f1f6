"""The import rules of the house plan, checked on the source tree's AST."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.glob("app/**/*.py"), *ROOT.glob("relay/**/*.py")])


def imported_modules(path: Path, source: str | None = None) -> set[str]:
    """Top-level and dotted module names a file imports (relative imports resolved)."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def owner(path: Path) -> str:
    return "/".join(path.relative_to(ROOT).parts)


def violations(path: Path, modules: set[str]) -> list[str]:
    where = owner(path)
    tops = {m.split(".")[0] for m in modules}
    problems: list[str] = []

    def allowed(*prefixes: str) -> bool:
        return any(where == p or where.startswith(p + "/") for p in prefixes)

    if "PySide6" in tops and not allowed("app/ui", "app/__main__.py"):
        problems.append("PySide6 outside app/ui and app/__main__.py")
    if "qasync" in tops and not allowed("app/ui", "app/__main__.py"):
        problems.append("qasync outside app/ui and app/__main__.py")
    if "websockets" in tops and not allowed("app/net", "relay/server.py"):
        problems.append("websockets outside app/net and relay/server.py")
    if "sqlcipher3" in tops and not allowed("app/store"):
        problems.append("sqlcipher3 outside app/store")
    if "sqlite3" in tops and not allowed("app/store"):
        problems.append("sqlite3 outside app/store")
    if "redis" in tops and not allowed("relay/backplane.py"):
        problems.append("redis outside relay/backplane.py")
    if "cryptography" in tops and not allowed("app/crypto", "relay"):
        problems.append("cryptography outside app/crypto and relay")
    if where.startswith("relay/") and "app" in tops:
        problems.append("relay imports app")
    if where.startswith("app/crypto/"):
        others = {m for m in modules if m.startswith("app.") and not m.startswith("app.crypto")}
        if others:
            problems.append(f"app/crypto imports {sorted(others)}")
    if where.startswith("app/core/"):
        others = {m for m in modules if m.startswith(("app.ui", "app.cli", "app.__main__"))}
        if others:
            problems.append(f"app/core imports {sorted(others)}")
    return problems


@pytest.mark.parametrize("path", SOURCES, ids=owner)
def test_layering(path: Path) -> None:
    assert violations(path, imported_modules(path)) == []


def test_the_checker_sees_a_broken_rule() -> None:
    """The rules are not vacuous: a forbidden import in each place is reported."""
    cases = {
        "app/core/x.py": "from PySide6 import QtCore",
        "app/crypto/x.py": "from app.store import db",
        "relay/state.py": "import app.core",
        "app/ui/x.py": "import sqlcipher3",
        "app/store/x.py": "import websockets",
        "app/net/x.py": "from cryptography.hazmat.primitives import hashes",
        "relay/server.py": "import redis.asyncio",
    }
    for rel, source in cases.items():
        fake = ROOT / rel
        assert violations(fake, imported_modules(fake, source)), rel
    relative = ROOT / "app/crypto/x.py"
    assert violations(relative, imported_modules(relative, "from ..store import db"))


def test_sources_exist() -> None:
    assert any(owner(p).startswith("relay/") for p in SOURCES)
