"""`make run` installs what the app needs and nothing more: the app alone into .venv (not the
test, lint and packaging tools) and Qt's Debian libraries (not Xvfb, Redis or iproute2);
`make test` adds the rest. Read from `make -n` in a copy of the project's two files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def dry_run(tmp_path: Path, target: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    for name in ("Makefile", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", target],
        cwd=tmp_path,
        env=env,  # as from a shell, also when the suite itself runs under `make test`
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_make_run_installs_the_app_alone(tmp_path: Path) -> None:
    steps = dry_run(tmp_path, "run")
    assert "pip install --quiet -e .\n" in steps
    assert "[dev]" not in steps
    for test_only in ("xvfb", "redis-server", "iproute2", "strace"):
        assert test_only not in steps
    assert "libxcb-cursor0" in steps  # what Qt needs is still there
    assert steps.rstrip().endswith(".venv/bin/anonchat")


def test_make_test_installs_the_tools_too(tmp_path: Path) -> None:
    steps = dry_run(tmp_path, "test")
    assert "-e '.[dev]'" in steps
    for test_only in ("xvfb", "redis-server", "iproute2"):
        assert test_only in steps
    # The processes the tests start read bytecode compiled once, before the tests.
    assert steps.index("-m compileall -q app relay tests") < steps.index("-m pytest")


def test_make_bench_runs_every_benchmark_and_node_sysdeps_none(tmp_path: Path) -> None:
    assert "for f in bench/*.py" in dry_run(tmp_path, "bench")
    assert "bench/" not in dry_run(tmp_path, "node-sysdeps")
