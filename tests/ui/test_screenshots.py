"""Screenshots of every main screen under Xvfb, light and dark, checked to be neither blank
nor clipped; the PNGs are kept in test-output/screenshots/ for people to look at."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "test-output" / "screenshots"
SCREENS = (
    "wizard",
    "unlock",
    "empty",
    "conversation",
    "conversation-details",
    "files",
    "narrow",
    "search-no-hits",
    "request",
    "my-code",
    "my-code-narrow",
    "my-code-address",
    "scanner",
    "safety-number",
    "settings",
    "settings-narrow",
    "settings-relay-narrow",
    "settings-connection",
    "settings-backups",
    "settings-backups-narrow",
    "restore",
    "restore-narrow",
    "group-invite",
    "group",
    "group-members",
    "new-group",
)


def free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X{n}-lock").exists() and not Path(f"/tmp/.X11-unix/X{n}").exists():
            return n
    raise RuntimeError("no free X display number")


@pytest.fixture
def xvfb() -> Iterator[str]:
    binary = shutil.which("Xvfb")
    if binary is None:
        pytest.skip("Xvfb is not installed")
    n = free_display()
    proc = subprocess.Popen(
        [binary, f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.skip("Xvfb did not start")
        time.sleep(0.05)
    yield f":{n}"
    proc.terminate()
    proc.wait(10)


def test_screenshots_light_and_dark(xvfb: str) -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    env = dict(os.environ, DISPLAY=xvfb, QT_QPA_PLATFORM="xcb", PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "tests.ui.screens", str(OUT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    problems = json.loads(done.stdout.strip().splitlines()[-1])
    assert problems == []
    for screen in SCREENS:
        for theme in ("light", "dark"):
            shot = OUT / f"{screen}-{theme}.png"
            assert shot.exists(), shot
            assert shot.stat().st_size > 2000
