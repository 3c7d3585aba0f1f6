"""The app's process ends with its own exit status: no abort while the interpreter finalises.

Each case runs in a child process, because the failure it guards against only shows at the
end: PySide6 6.12.0 drops a reference to `None` on every Qt call that returns nothing, so
after enough calls CPython frees `None` and aborts (pyproject.toml excludes that release).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child(code: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_many_void_qt_calls_then_a_clean_exit() -> None:
    done = child(
        """
        import sys
        from PySide6.QtWidgets import QApplication, QLabel
        app = QApplication([])
        label = QLabel()
        before = sys.getrefcount(None)
        for i in range(300_000):
            label.setText("x")  # returns None: the call that dropped a reference
        print("slips", (before - sys.getrefcount(None)) / 300_000)
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    slips = float(done.stdout.split("slips", 1)[1])
    assert abs(slips) < 0.01, f"the Qt bindings lose {slips} references to None per call"


def test_app_unlocks_closes_and_exits_zero(tmp_path: Path) -> None:
    """The real entry point: unlock screen, main window, close; exit status 0."""
    profile = tmp_path / "me"
    done = child(
        f"""
        import asyncio
        from app.core.engine import Engine
        from app.core.profile import create_profile, profile_paths
        from app.crypto.passphrase import INSECURE_FAST_PARAMS

        async def make():
            paths = profile_paths({str(profile)!r})
            opened = await create_profile(paths, "correct horse battery", "Me",
                                          "ws://127.0.0.1:9", INSECURE_FAST_PARAMS)
            await (await Engine.open(opened)).close()
        asyncio.run(make())

        from PySide6.QtCore import QTimer
        from PySide6.QtWidgets import QApplication
        from app.__main__ import main
        from app.ui.onboarding import UnlockPage
        from app.ui.window import MainWindow

        app = QApplication([])
        seen = []

        def drive():
            for w in QApplication.topLevelWidgets():
                if isinstance(w, UnlockPage) and w.isVisible() and "unlock" not in seen:
                    seen.append("unlock")
                    w.passphrase.setText("correct horse battery")
                    w.unlock.click()
                if isinstance(w, MainWindow) and w.isVisible() and "window" not in seen:
                    seen.append("window")
                    for _ in range(20_000):
                        w.connection.setText("busy")
                    w.close()
            QTimer.singleShot(50, drive)

        QTimer.singleShot(0, drive)
        code = main(["--profile", {str(profile)!r}])
        print("seen", seen, "code", code)
        raise SystemExit(code)
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "seen ['unlock', 'window'] code 0" in done.stdout


def test_version_flag() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "app", "--version"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    assert done.stdout.startswith("anonchat ")
