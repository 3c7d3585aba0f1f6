"""Shared by the relay tests: mailbox keys, subscribe frames, and a relay child process."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from relay import wire

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class MailboxKey:
    """An Ed25519 mailbox key pair, the mailbox id it owns, and the proofs it signs."""

    private: Ed25519PrivateKey
    public: bytes
    mailbox: bytes

    @classmethod
    def generate(cls) -> MailboxKey:
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(private, public, wire.mailbox_id(public))

    def subscribe(self, rid: int, challenge: bytes) -> wire.Subscribe:
        sig = self.private.sign(wire.subscribe_signed_bytes(challenge, self.mailbox))
        return wire.Subscribe(rid, self.mailbox, self.public, sig)

    def signer(self, challenge: bytes) -> tuple[bytes, bytes]:
        """What the client pool asks of the engine for each connection's challenge."""
        return self.public, self.private.sign(wire.subscribe_signed_bytes(challenge, self.mailbox))

    def verify(self, frame: wire.Subscribe, challenge: bytes) -> bool:
        try:
            self.private.public_key().verify(
                frame.sig, wire.subscribe_signed_bytes(challenge, frame.mailbox)
            )
        except Exception:
            return False
        return frame.key == self.public and frame.mailbox == self.mailbox


class RelayProcess:
    """``python -m relay`` on 127.0.0.1 with a free port, its stderr kept for assertions."""

    def __init__(self, *args: str, prefix: list[str] | None = None, cwd: Path = ROOT) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        cmd = [*(prefix or []), sys.executable, "-m", "relay", "--port", "0", *args]
        self.proc = subprocess.Popen(
            cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.traced = bool(prefix)
        self.terminated = False
        self.lines: list[str] = []
        deadline = time.monotonic() + 20
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            found = re.search(r"listening on (wss?://[^ ]+?:(\d+)/)", line)
            if found:
                self.url = found.group(1)
                self.port = int(found.group(2))
                return
        self.proc.kill()
        raise RuntimeError("relay did not start: " + "".join(self.lines))

    @property
    def pid(self) -> int:
        """The relay's own pid, also when it runs under a tracer such as strace."""
        if not self.traced:
            return self.proc.pid
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        return int(children.split()[0])

    def terminate(self) -> None:
        self.terminated = True
        os.kill(self.pid, signal.SIGTERM)

    def stop(self, timeout: float = 15) -> tuple[int, str]:
        """SIGTERM the relay (once: a second SIGTERM while it shuts down would kill it),
        wait, and return the exit code and the whole log."""
        if self.proc.poll() is None and not self.terminated:
            self.terminate()
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            raise
        return self.proc.returncode, "".join(self.lines) + out

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")
