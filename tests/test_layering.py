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
    if where.startswith("app/domain/"):
        others = {m for m in modules if m.startswith(("app.", "relay.")) or m in ("app", "relay")}
        others = {m for m in others if not m.startswith("app.domain")}
        if others:
            problems.append(f"app/domain imports {sorted(others)}")
    if allowed("app/ui", "app/cli.py", "app/__main__.py"):
        store = {m for m in modules if m == "app.store" or m.startswith("app.store.")}
        if store:
            problems.append(f"a front end imports {sorted(store)}: use app.core or app.domain")
    embeds = any(m == "relay.server" or m.startswith("relay.server.") for m in modules)
    if embeds and where.startswith("app/") and where != EMBEDS_RELAY:
        problems.append(f"relay.server imported outside {EMBEDS_RELAY}")
    return problems


EMBEDS_RELAY = "app/ui/embedded_relay.py"  # the one module that starts a relay in-process


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(sources: dict[Path, str]) -> dict[str, set[str]]:
    """Module -> the project modules it imports (a package means its __init__)."""
    names = {module_name(p) for p in sources}
    return {
        module_name(path): {m for m in imported_modules(path, src) if m in names}
        - {module_name(path)}
        for path, src in sources.items()
    }


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


# Private by the standard library's own convention, not ours.
STDLIB_PRIVATE = {"_replace", "_asdict", "_fields", "_make", "_MEIPASS", "_exit"}


def private_reaches(path: Path, source: str | None = None) -> list[str]:
    """`x._name` where x is not self/cls and nothing in this file defines `_name`, and
    `from m import _name`: a module reaching into another one's private parts."""
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    defined: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            defined.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name = node.attr
            if not name.startswith("_") or name.startswith("__") or name in STDLIB_PRIVATE:
                continue
            if isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"):
                continue
            if name not in defined:
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and node.module != "__future__":
            found += [
                f"line {node.lineno}: imports {a.name}"
                for a in node.names
                if a.name.startswith("_") and not a.name.startswith("__")
            ]
    return found


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


def test_no_import_cycles_inside_app() -> None:
    app = {p: p.read_text() for p in SOURCES if owner(p).startswith("app/")}
    assert import_cycles(import_graph(app)) == []


@pytest.mark.parametrize("path", SOURCES, ids=owner)
def test_no_module_reaches_into_another_ones_private_parts(path: Path) -> None:
    assert private_reaches(path) == []


def test_the_new_rules_see_a_broken_rule() -> None:
    """Each rule of the redesign reports a file that breaks it, and only that file."""
    cases = {
        "app/domain/x.py": "from app.store.records import OutboxItem",
        "app/ui/x.py": "from app.store.errors import StoreError",
        "app/cli.py": "import app.store.paths",
        "app/ui/launcher.py": "from relay.server import serve_relay",
    }
    for rel, source in cases.items():
        fake = ROOT / rel
        assert violations(fake, imported_modules(fake, source)), rel
    fine = {
        "app/domain/x.py": "from app.domain.messages import Status",
        "app/ui/x.py": "from app.core.errors import StoreError",
        EMBEDS_RELAY: "from relay.server import serve_relay",
    }
    for rel, source in fine.items():
        fake = ROOT / rel
        assert violations(fake, imported_modules(fake, source)) == [], rel

    # A cycle: the engine's use case importing the engine back, as it once did.
    app = {p: p.read_text() for p in SOURCES if owner(p).startswith("app/")}
    account = ROOT / "app/core/account.py"
    app[account] += "\nfrom app.core.engine import Engine\n"
    assert sorted(
        m
        for group in import_cycles(import_graph(app))
        for m in group
        if m.endswith(("account", "engine"))
    ) == ["app.core.account", "app.core.engine"]

    # A private reach: a use case poking the engine's internals.
    reach = "def f(engine):\n    engine._emit(None)\n"
    assert private_reaches(account, reach) == ["line 2: engine._emit"]
    assert private_reaches(account, "from app.core.outbox import _mark_sent\n")
    own = "class A:\n    _x = 1\n    def f(self, other):\n        return other._x\n"
    assert private_reaches(account, own) == []


def test_sources_exist() -> None:
    assert any(owner(p).startswith("relay/") for p in SOURCES)
