"""Shared by the net tests: relay processes, free ports, an event recorder."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.net.events import NetEvent

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RelayProcess:
    """``python -m relay`` on 127.0.0.1; a given port lets a test restart it in the same place."""

    def __init__(self, port: int | None = None, *args: str) -> None:
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}/"
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "relay", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*cmd, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        assert self.proc.stdout is not None
        seen = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            seen += line
            if re.search(rb"listening on ws://", line):
                return
        self.proc.kill()
        raise RuntimeError("relay did not start: " + seen.decode(errors="replace"))

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass
class Recorder:
    """Collects a pool's events and lets a test wait, bounded, for the one it expects."""

    events: list[NetEvent] = field(default_factory=list)
    _changed: asyncio.Event | None = None

    def __call__(self, event: NetEvent) -> None:
        self.events.append(event)
        if self._changed is not None:
            self._changed.set()

    def mark(self) -> int:
        return len(self.events)

    async def wait_for(
        self, match: Callable[[NetEvent], bool], within: float = 10.0, since: int = 0
    ) -> NetEvent:
        """The first event from index ``since`` on that ``match`` accepts, in ``within`` s."""
        if self._changed is None:
            self._changed = asyncio.Event()
        seen = since
        async with asyncio.timeout(within):
            while True:
                for event in self.events[seen:]:
                    if match(event):
                        return event
                seen = len(self.events)
                self._changed.clear()
                await self._changed.wait()

    def of(self, kind: type) -> list[NetEvent]:
        return [e for e in self.events if isinstance(e, kind)]
