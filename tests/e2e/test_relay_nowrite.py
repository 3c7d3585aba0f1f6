"""The relay opens no file for writing, whatever it is asked to do (watched with strace -f)."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from relay import wire
from tests.relay.helpers import ROOT, MailboxKey, RelayProcess

pytestmark = pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")

WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")
TRACED = "openat,open,creat,rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,truncate"


def strace(trace: Path) -> list[str]:
    """The command prefix that records every file-changing call of a process and its children."""
    return ["strace", "-f", "-qq", "-e", f"trace={TRACED}", "-o", str(trace)]


def file_changes(trace: Path) -> list[str]:
    """The traced calls that could change a file: opens for writing (outside /dev), creat,
    rename, unlink, mkdir, truncate. Fails when the trace saw nothing at all."""
    lines = trace.read_text().splitlines()
    assert any("openat" in line for line in lines), "strace saw nothing: the trace is not live"
    return [
        line
        for line in lines
        if (
            (("openat(" in line or "open(" in line) and WRITE_FLAGS.search(line))
            and "/dev/" not in line
        )
        or re.search(r"\b(creat|rename\w*|unlink\w*|mkdir\w*|truncate)\(", line)
    ]


async def exercise(url: str) -> None:
    key = MailboxKey.generate()
    sub = await connect(url, compression=None)
    hello = wire.decode(await sub.recv())  # type: ignore[arg-type]
    assert isinstance(hello, wire.Hello)
    await sub.send(wire.encode(key.subscribe(1, hello.challenge)))
    await sub.recv()
    sender = await connect(url, compression=None)
    await sender.recv()
    for rid in range(50):
        await sender.send(wire.encode(wire.Send(rid, key.mailbox, b"\x01" * 200)))
        await sender.recv()
        await sub.recv()
    await sender.send(b"\xc1junk")
    await sender.recv()
    await sender.close()
    await sub.close()


def test_relay_writes_no_file(tmp_path: Path) -> None:
    trace = tmp_path / "trace"
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    proc = RelayProcess(prefix=strace(trace), cwd=home)
    try:
        asyncio.run(exercise(proc.url))
        subprocess.run(
            [
                sys.executable,
                "-c",
                f"import urllib.request as u; u.urlopen('http://127.0.0.1:{proc.port}/metrics').read()",
            ],
            check=True,
            cwd=ROOT,
        )
    finally:
        code, log = proc.stop()
    assert code == 0, log
    assert file_changes(trace) == []
    assert list(home.iterdir()) == []
