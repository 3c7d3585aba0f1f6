from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.domain.messages import Direction, Status
from app.ui.demo import GREETING, DemoSession
from tests.ui.conftest import until

ROOT = Path(__file__).resolve().parents[2]


def test_demo_two_windows_already_talking_and_nothing_left(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)

    async def body() -> None:
        import asyncio

        demo = DemoSession()
        runner = asyncio.ensure_future(demo.run())
        await asyncio.wait_for(demo.ready.wait(), 30)
        assert demo.directory is not None
        assert demo.directory.parent == tmp_path
        alice, bob = demo.windows
        assert alice.isVisible()
        assert bob.isVisible()
        assert alice.geometry().right() < bob.geometry().left()  # side by side
        await until(
            lambda: bob.panel.model is not None and bob.panel.model.rowCount() == 1,
            what="the greeting in Bob's window",
        )
        assert bob.panel.model is not None
        assert bob.panel.model.message(0).body == GREETING
        await until(
            lambda: (
                alice.panel.model is not None
                and alice.panel.model.rowCount() == 1
                and alice.panel.model.message(0).status in (Status.DELIVERED, Status.READ)
            ),
            what="the greeting delivered",
        )
        assert alice.panel.model is not None
        assert alice.panel.model.message(0).direction is Direction.OUTGOING
        # Bob has the conversation open: the greeting counts as read.
        await until(lambda: bob.contacts.summary(0).unread == 0, what="read in Bob's window")
        assert "Online" in bob.connection.text()
        assert "Online" in alice.connection.text()
        bob.close()  # closing either window ends the demo
        await asyncio.wait_for(runner, 20)
        assert not alice.isVisible()

    run(body())
    assert list(tmp_path.iterdir()) == []


def test_demo_process_ends_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TMPDIR=str(tmp_path), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "--demo"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            lines.append(line)
            if "demo is ready" in line or not line:
                break
        assert "demo is ready" in lines[-1], lines
        assert any(tmp_path.iterdir())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list(tmp_path.iterdir()) == []
