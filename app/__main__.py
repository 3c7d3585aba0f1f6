"""anonchat: the desktop app. `anonchat [--profile NAME|DIR] [--relay URL] [--demo]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from importlib import metadata
from pathlib import Path


def version() -> str:
    try:
        return metadata.version("anonchat")
    except metadata.PackageNotFoundError:
        return "unknown"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anonchat", description="End-to-end encrypted messenger")
    p.add_argument("--profile", default="default", help="profile name or directory")
    p.add_argument(
        "--relay",
        metavar="URL",
        help="relay for a new profile (default: an embedded relay on 127.0.0.1:8765)",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="two throwaway profiles side by side, already contacts; nothing is kept",
    )
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument(
        "--self-test", action="store_true", help="check that the installed app works, then exit"
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.version:
        print(f"anonchat {version()}")
        return 0
    if args.self_test:
        from app.ui.selftest import run_self_test

        return int(run_self_test(args))
    return run_app(args)


async def raise_open_window(directory: Path) -> tuple[int, str] | None:
    """When a process holds this profile open already: raise its window, or say which
    process holds it (the exit code and what to say); None when none does."""
    from app.net.rpc import ApiClient, RpcError, socket_path

    client = await ApiClient.connect(socket_path(directory))
    if client is None:
        return None
    try:
        await client.call("window.raise")
    except RpcError:
        return 1, "this profile is open in anonchat-cli (listen or daemon); stop it first"
    except ConnectionError:
        return None
    finally:
        await client.close()
    return 0, "AnonChat is already open for this profile: its window was raised"


def run_app(args: argparse.Namespace) -> int:
    import qasync
    from PySide6.QtWidgets import QApplication

    from app.core.errors import UserError
    from app.core.profile import profile_paths
    from app.ui.launcher import Launcher, RunningProfile

    session: RunningProfile
    if args.demo:
        from app.ui.demo import DemoSession

        session = DemoSession()
        print(
            "AnonChat demo: two throwaway profiles; closing a window ends the demo and "
            "removes them.",
            flush=True,
        )
    else:
        try:
            paths = profile_paths(args.profile)
        except UserError as exc:
            print(f"anonchat: {exc}", file=sys.stderr)
            return 2
        held = asyncio.run(raise_open_window(paths.directory))
        if held is not None:
            code, said = held
            print(f"anonchat: {said}", file=sys.stderr if code else sys.stdout)
            return code
        from app.cli import api_handler

        session = Launcher(paths, args.relay, api=api_handler)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    from app.ui.theme import setup_application

    setup_application(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    stopping: list[int] = []

    def stop(code: int) -> None:
        if not stopping:
            stopping.append(code)
            loop.create_task(session.shutdown())

    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # no unix signals here
            loop.add_signal_handler(signum, stop, 130 if signum == signal.SIGINT else 0)
    code = 0
    with loop:  # closes the loop on the way out
        try:
            loop.run_until_complete(session.run())
        except KeyboardInterrupt:
            loop.run_until_complete(session.shutdown())
            code = 130
    asyncio.set_event_loop(None)
    session.deleteLater()
    app.processEvents()
    return stopping[0] if stopping and code == 0 else code


if __name__ == "__main__":
    sys.exit(main())
