"""The desktop app holds the profile and serves the local API (docs/api.md): the real CLI, as
a subprocess, sends through it with no passphrase and lists what the window shows; a second
`anonchat` on the profile raises the open window instead of asking for the passphrase."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from app.__main__ import raise_open_window
from app.cli import api_handler
from app.net.rpc import socket_path
from tests.ui.conftest import Relay, eventually, headless, launch, until

ROOT = Path(__file__).resolve().parents[2]


async def cli(directory: Path, *args: str) -> tuple[int, str, str]:
    """`anonchat-cli --profile DIR --json ARGS` with no passphrase anywhere."""
    env = {k: v for k, v in os.environ.items() if k != "ANONCHAT_PASSPHRASE"}
    env["PYTHONPATH"] = str(ROOT)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app.cli",
        "--profile",
        str(directory),
        "--json",
        *args,
        cwd=ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def test_the_cli_runs_through_the_open_app(
    run: Callable[[Coroutine[Any, Any, Any]], Any], tmp_path: Path
) -> None:
    async def body() -> None:
        relay = Relay()
        url = await relay.start()
        alice = await headless(tmp_path / "alice", "Alice", url)
        try:
            launcher = await launch(tmp_path / "bob", "Bob", url, api=api_handler)
            try:
                window, engine = launcher.window, launcher.engine
                assert window is not None
                assert engine is not None
                bob_dir = tmp_path / "bob"
                assert socket_path(bob_dir).exists()
                assert socket_path(bob_dir).stat().st_mode & 0o777 == 0o600
                # Bob's card, through the app; Alice adds him and Bob accepts in the app.
                rc, out, _ = await cli(bob_dir, "card")
                assert rc == 0
                card = json.loads(out)["card"]
                to_bob = await alice.add_contact(card)
                await eventually(lambda: engine.requests(), what="Alice's request")
                (request,) = await engine.requests()
                to_alice = await engine.accept_request(request.request.id)

                async def established() -> bool:
                    return any(s.established for s in await alice.summaries())

                await eventually(established, what="the handshake")
                # The CLI sends through the app: exit 0, delivered, shown in the window's engine.
                rc, out, err = await cli(bob_dir, "send", "Alice", "hi from the terminal")
                assert (rc, err) == (0, "")
                assert json.loads(out)["status"] == "delivered"
                got = await alice.messages(to_bob.id)
                assert [m.body for m in got] == ["hi from the terminal"]
                mine = await engine.messages(to_alice.id)
                assert [m.body for m in mine] == ["hi from the terminal"]
                # A user error comes back with the CLI's exit code and message.
                rc, out, err = await cli(bob_dir, "send", "Nobody", "x")
                assert (rc, out) == (1, "")
                assert err.startswith("anonchat-cli: ")
                assert "Nobody" in err
                # A second `anonchat` raises the window instead of asking for a passphrase.
                window.showMinimized()
                assert await raise_open_window(bob_dir) == (
                    0,
                    "AnonChat is already open for this profile: its window was raised",
                )
                await until(lambda: not window.isMinimized(), what="the window raised")
            finally:
                await launcher.shutdown()
            assert not socket_path(tmp_path / "bob").exists()
        finally:
            await alice.close()
            await relay.close()

    run(body(), timeout=120)
