"""Which source files are mutated, and which test paths must notice each mutant.

Each source file is checked against its own test folder only: a mutant in app/crypto that
only an end-to-end test notices says the crypto tests have a gap. Add a module by adding a
row (a glob is fine); the test paths are what pytest receives, relative to the repository.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# (source glob, test paths). The first matching row wins for a file.
TARGETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # The passphrase KDF and key header live in app/crypto, but the store opens profiles with
    # them, and the store's tests are theirs.
    (
        "app/crypto/passphrase.py",
        (
            "tests/store/test_passphrase.py",
            "tests/store/test_key_header_layout.py",
            "tests/store/test_vault.py",
        ),
    ),
    # Groups: what is signed, who may change a group, what a member takes.
    ("app/crypto/groupsig.py", ("tests/core/test_statements.py",)),
    ("app/crypto/*.py", ("tests/crypto",)),
    ("app/core/statements.py", ("tests/core/test_statements.py",)),
    ("app/core/roster.py", ("tests/core/test_roster.py",)),
    ("app/core/group_state.py", ("tests/core/test_group_state.py", "tests/core/test_groups.py")),
    ("app/core/group_intake.py", ("tests/core/test_group_intake.py", "tests/core/test_groups.py")),
    ("app/core/group*.py", ("tests/core/test_groups.py",)),
    ("app/core/payload.py", ("tests/core",)),
    # The authenticity code: who may start, change, block or end a contact.
    ("app/core/handshakes.py", ("tests/core",)),
    ("app/core/contacts.py", ("tests/core",)),
    # The bounds under attack: what the client takes in, and how fast.
    ("app/core/intake.py", ("tests/core/test_intake.py",)),
    # The conversation: who may change which message, and what disappears when.
    ("app/core/conversation.py", ("tests/core/test_conversation.py",)),
    ("app/core/expiry.py", ("tests/core/test_conversation.py",)),
    ("app/store/conversation.py", ("tests/store/test_conversation_repo.py",)),
    # Files: what may enter a file, what is kept, what is taken up again.
    ("app/core/transfers.py", ("tests/core/test_files.py",)),
    ("app/core/files.py", ("tests/core/test_files.py",)),
    ("app/store/files.py", ("tests/store/test_files_store.py",)),
    ("app/store/blobs.py", ("tests/store/test_files_store.py",)),
    ("relay/state.py", ("tests/relay",)),
)

# Test runs: without the long soak runs, stop at the first failure, leave no cache behind.
PYTEST_ARGS: tuple[str, ...] = ("-m", "not soak", "-x", "-q", "-p", "no:cacheprovider")
TEST_ENV: dict[str, str] = {"QT_QPA_PLATFORM": "offscreen"}


@dataclass(frozen=True, slots=True)
class Target:
    """One source file (relative, POSIX) and the test paths that must kill its mutants."""

    path: str
    tests: tuple[str, ...]


def resolve(root: Path) -> list[Target]:
    """Every existing source file under ``root`` that a row of TARGETS names, in table order."""
    seen: set[str] = set()
    found: list[Target] = []
    for pattern, tests in TARGETS:
        for file in sorted(root.glob(pattern)):
            rel = file.relative_to(root).as_posix()
            if file.is_file() and rel not in seen:
                seen.add(rel)
                found.append(Target(rel, tests))
    return found
