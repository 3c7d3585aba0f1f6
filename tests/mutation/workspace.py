"""Private work copies of the repository, and the pytest runs made inside them.

Mutants are written into a copy, never into the tree someone is editing. The package is
installed editable into the venv pointing at the original checkout, so every run puts the
copy first on PYTHONPATH (pytest's ``pythonpath = ["."]`` does too) and the runner checks,
with a deliberately broken copy, that the copy's modules really are the ones imported.
Bytecode is never written, so a stale .pyc of a previous mutant can never run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.mutation.targets import PYTEST_ARGS, TEST_ENV

PLUGIN_MODULE = "anonchat_mutation_plugin"
# Address-space cap per pytest run: a mutant that loops appending to a buffer fails with
# MemoryError (killed) instead of exhausting the machine. The un-mutated suites peak < 1 GiB.
MEMORY_LIMIT = 4 << 30
_OUTPUT_TAIL = 6000
# Runs in progress, so Ctrl-C can stop exactly the processes this runner started.
_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class RunResult:
    """How one pytest run ended; ``code`` is None when it was killed for taking too long."""

    code: int | None
    seconds: float
    output: str


def project_files(root: Path) -> list[str]:
    """Tracked files plus untracked ones not ignored: what a fresh clone with the current
    edits would hold (no venv, caches or earlier results)."""
    listed = subprocess.run(
        ["git", "-C", str(root), "ls-files", "-co", "--exclude-standard", "-z"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    files = []
    for rel in sorted(set(listed.split("\0"))):
        path = root / rel
        if rel and not rel.startswith(".mutation/") and (path.is_file() or path.is_symlink()):
            files.append(rel)
    return files


def install_plugin(directory: Path) -> Path:
    """Copy pytest_plugin.py into ``directory`` under a name no project module can shadow."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__).with_name("pytest_plugin.py"), directory / f"{PLUGIN_MODULE}.py")
    return directory


class Workspace:
    """One private copy; a worker owns it while it runs a mutant in it."""

    def __init__(self, path: Path, plugin_dir: Path) -> None:
        self.path = path
        self.plugin_dir = plugin_dir

    @classmethod
    def create(cls, root: Path, dest: Path, plugin_dir: Path) -> Workspace:
        """A copy of ``root``'s project files, with a ``.venv`` link for tests that want one."""
        for rel in project_files(root):
            src, dst = root / rel, dest / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_symlink():
                dst.symlink_to(os.readlink(src))
            else:
                shutil.copy2(src, dst)
        if sys.prefix != sys.base_prefix and not (dest / ".venv").exists():
            (dest / ".venv").symlink_to(sys.prefix, target_is_directory=True)
        return cls(dest, plugin_dir)

    def clone(self, dest: Path) -> Workspace:
        """Another copy of the same snapshot (not of the live tree, which may have moved on)."""
        shutil.copytree(self.path, dest, symlinks=True)
        return Workspace(dest, self.plugin_dir)

    def read(self, rel: str) -> bytes:
        return (self.path / rel).read_bytes()

    def write(self, rel: str, data: bytes) -> None:
        target = self.path / rel
        target.write_bytes(data)
        shutil.rmtree(target.parent / "__pycache__", ignore_errors=True)

    def pytest(
        self, args: list[str], timeout: float | None = None, env: dict[str, str] | None = None
    ) -> RunResult:
        """``python -m pytest`` in this copy; on timeout its whole process group is killed."""
        cmd = [sys.executable, "-m", "pytest", *PYTEST_ARGS, "-p", PLUGIN_MODULE, *args]
        path = [str(self.path), str(self.plugin_dir)]
        if os.environ.get("PYTHONPATH"):
            path.append(os.environ["PYTHONPATH"])
        full_env = {
            **os.environ,
            **TEST_ENV,
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONPATH": os.pathsep.join(path),
            "MUTATION_MEMORY_LIMIT": str(MEMORY_LIMIT),
            **(env or {}),
        }
        start = time.monotonic()
        proc = subprocess.Popen(
            cmd,
            cwd=self.path,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        with _LIVE_LOCK:
            _LIVE.add(proc)
        try:
            out, _ = proc.communicate(timeout=timeout)
            code: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            out, _ = proc.communicate()
            code = None
        finally:
            with _LIVE_LOCK:
                _LIVE.discard(proc)
        tail = out[-_OUTPUT_TAIL:].decode("utf-8", "replace")
        return RunResult(code, time.monotonic() - start, tail)

    @staticmethod
    def kill_all() -> None:
        """Stop every pytest run still going (on Ctrl-C), and only those."""
        with _LIVE_LOCK:
            running = list(_LIVE)
        for proc in running:
            _kill_group(proc)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the run and whatever it started (relay subprocesses): its own session."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
