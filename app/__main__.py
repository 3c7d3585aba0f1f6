"""anonchat: the desktop app. `anonchat [--profile NAME|DIR] [--relay URL]`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import qasync
from PySide6.QtWidgets import QApplication

from app.core.errors import UserError
from app.core.profile import profile_paths
from app.ui.launcher import Launcher


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anonchat", description="End-to-end encrypted messenger")
    p.add_argument("--profile", default="default", help="profile name or directory")
    p.add_argument(
        "--relay",
        metavar="URL",
        help="relay for a new profile (default: an embedded relay on 127.0.0.1:8765)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        paths = profile_paths(args.profile)
    except UserError as exc:
        print(f"anonchat: {exc}", file=sys.stderr)
        return 2
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("AnonChat")
    app.setDesktopFileName("anonchat")
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    launcher = Launcher(paths, args.relay)
    launcher.show_gate()
    code = 0
    with loop:
        try:
            loop.run_until_complete(launcher.run())
        except KeyboardInterrupt:
            loop.run_until_complete(launcher.shutdown())
            code = 130
    # The engine, store and relay are closed by now. Leave without finalising the
    # interpreter: the Qt bindings can abort while garbage-collecting at exit.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
