"""`anonchat --self-test` as a user runs it: a subprocess, offscreen, judged by exit status."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen", TMPDIR=str(tmp_path))
    return subprocess.run(
        [sys.executable, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_self_test_passes_and_leaves_nothing(tmp_path: Path) -> None:
    done = run(["-m", "app", "--self-test"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    steps = [line for line in lines if line.startswith("[")]
    assert len(steps) == 9
    assert all(": ok" in line for line in steps), done.stdout
    assert "delivered" in steps[6] or "read" in steps[6]
    assert lines[-1].startswith("self-test passed")
    assert list(tmp_path.iterdir()) == []  # the temporary profiles are gone


def test_self_test_names_the_step_that_ran_out_of_time(tmp_path: Path) -> None:
    code = (
        "import argparse, os, sys\n"
        "from app.ui.selftest import FAILED_BASE, run_self_test\n"
        "status = run_self_test(argparse.Namespace(timeout=0.001))\n"
        "sys.stdout.flush()\n"
        "os._exit(status)\n"
    )
    done = run(["-c", code], tmp_path)
    assert done.returncode > 10, done.stdout + done.stderr
    failed = done.returncode - 10
    assert f"FAILED at step {failed}" in done.stdout.splitlines()[-1]
    assert "took longer than" in done.stdout
    assert list(tmp_path.iterdir()) == []
