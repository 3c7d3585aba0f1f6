"""Files through the real CLI, a real relay on 127.0.0.1 and two real profiles: `send-file`,
`files`, `save-file` with their exit codes; a download whose receiver is killed (SIGKILL)
again and again mid-transfer resumes from what it held, the file arrives whole and the sender
sends little more than the file; and the relay opens no file for writing while pieces flow
through it."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Json, Listener, Profile, Relay, child_env, free_port, pair

MB = 1_000_000
# A relay whose send budget (per connection, which clients pace themselves to) is half the
# default with a small burst: pieces flow at some 3 MB/s, slow enough to be seen moving.
PACED = ("--send-rate", "50", "--send-burst", "10")
FILE_KEYS = {
    "id",
    "message_id",
    "contact",
    "direction",
    "name",
    "size",
    "mime",
    "sha256",
    "state",
    "received_bytes",
    "sent_bytes",
    "error",
}


def payload(path: Path, size: int) -> str:
    """A file of `size` random bytes at `path`; its SHA-256 (hex)."""
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def file_events(listener: Listener, file_id: int | None = None) -> list[Json]:
    return [e for e in listener.of("file") if file_id is None or e["id"] == file_id]


def received(listener: Listener) -> int:
    """The most of the file a receiving listener reported held so far."""
    return max((e["received_bytes"] for e in file_events(listener)), default=0)


def offer_at(bob: Profile, name: str) -> Json:
    (row,) = [f for f in bob.run("files", "Alice").data if f["name"] == name]
    return row


def test_send_file_files_and_save_file(
    relay: Relay, make_profile: Callable[..., Profile], tmp_path: Path
) -> None:
    alice, bob = pair(make_profile, relay.url)
    source = tmp_path / "report.bin"
    digest = payload(source, 300_000)
    bob_l = bob.listen()
    bob_l.wait_listening()

    sent = alice.run("send-file", "Bob", str(source), "--wait", "30").data
    assert sent["file"]["state"] == "complete"
    assert (sent["file"]["name"], sent["file"]["size"]) == ("report.bin", 300_000)
    assert sent["file"]["sha256"] == digest
    assert set(sent["file"]) == FILE_KEYS

    # The receiver's listen told of the message with its file, and of the file as it came.
    bob_l.wait_for(lambda ev: any(e.get("state") == "complete" for e in ev if e["event"] == "file"))
    (message,) = bob_l.incoming()
    assert message["file"]["name"] == "report.bin"
    assert message["file"]["size"] == 300_000
    done = [e for e in file_events(bob_l) if e["state"] == "complete"][-1]
    assert done["received_bytes"] == 300_000
    assert done["sha256"] == digest

    # Through the holder (bob listens): a relative path is the caller's, not the holder's.
    rows = bob.run("files").data
    (row,) = rows
    assert set(row) == FILE_KEYS
    assert (row["direction"], row["state"], row["message_id"]) == ("in", "complete", message["id"])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    saved = subprocess.run(
        bob.argv("save-file", str(row["id"]), "copy.bin"),
        cwd=out_dir,
        env=child_env(bob.passphrase),
        capture_output=True,
        timeout=60,
    )
    assert saved.returncode == 0, saved.stderr
    assert (out_dir / "copy.bin").read_bytes() == source.read_bytes()
    assert bob_l.stop() == 0
    bob_l.assert_clean()

    # Without a holder: the file is saved by the CLI itself, the text output names it.
    plain = bob.run("save-file", str(row["id"]), str(tmp_path / "again.bin"), json_out=False)
    assert "saved file" in plain.out
    assert (tmp_path / "again.bin").read_bytes() == source.read_bytes()
    table = bob.run("files", "Alice", json_out=False).out
    assert "report.bin" in table
    assert "complete" in table

    ours = alice.run("files", "Bob").data
    assert [(f["direction"], f["state"], f["received_bytes"]) for f in ours] == [
        ("out", "complete", 300_000)
    ]
    assert ours[0]["sent_bytes"] >= 300_000

    # Refusals: an unknown file id, a file that is not there, a contact that is not one.
    unknown = bob.run("save-file", "999", str(tmp_path / "x"), expect=1)
    assert "no such file" in unknown.err
    assert unknown.out == ""
    assert not (tmp_path / "x").exists()
    missing = alice.run("send-file", "Bob", str(tmp_path / "nothing.bin"), expect=1)
    assert "nothing.bin" in missing.err
    assert "no contact" in alice.run("send-file", "Carol", str(source), expect=1).err.lower()
    # Bob is away: the file is offered, and --wait ends with exit code 3 saying so.
    away = alice.run("send-file", "Bob", str(source), "--wait", "2", json_out=False, expect=3)
    assert "Bob has not got it all" in away.err
    assert "0 bytes of 300 KB so far" in away.err
    assert [f["state"] for f in alice.run("files").data] == ["complete", "queued"]


def test_save_file_waits_for_a_file_offered_past_the_limit(
    relay: Relay, make_profile: Callable[..., Profile], tmp_path: Path
) -> None:
    """Past the automatic-download limit a file waits as offered; save-file asks for it, stays
    connected until it is whole and checked; without waiting it says what is missing."""
    alice, bob = pair(make_profile, relay.url)
    assert bob.run("config", "auto-download", "0").data["auto_download_mb"] == 0
    source = tmp_path / "big.bin"
    digest = payload(source, 700_000)
    alice_l = alice.listen()  # the sender stays online to serve the pieces
    alice_l.wait_listening()
    bob_l = bob.listen()
    bob_l.wait_listening()
    alice.run("send-file", "Bob", str(source))
    bob_l.wait_for(lambda ev: any(e["event"] == "message" for e in ev))
    assert bob_l.stop() == 0
    row = offer_at(bob, "big.bin")
    assert (row["state"], row["received_bytes"]) == ("offered", 0)

    early_path = tmp_path / "early.bin"
    early = bob.run("save-file", str(row["id"]), str(early_path), "--wait", "0", expect=1)
    assert "has not arrived yet" in early.err
    assert not early_path.exists()

    cancelled = bob.run("cancel-file", str(row["id"])).data
    assert (cancelled["id"], cancelled["state"]) == (row["id"], "cancelled")

    # A cancelled file is asked for again by save-file, which stays until it is whole.
    target = tmp_path / "saved.bin"
    done = bob.run("save-file", str(row["id"]), str(target), "--wait", "60").data
    assert (done["state"], done["sha256"], done["path"]) == ("complete", digest, str(target))
    assert sha256_of(target) == digest
    assert alice_l.stop() == 0
    alice_l.assert_clean()
    assert offer_at(bob, "big.bin")["state"] == "complete"


# -- a receiver killed mid-transfer, again and again ------------------------------------------


@pytest.mark.parametrize(
    ("size", "kills"),
    [
        pytest.param(6 * MB, 2, id="6MB-2-kills"),
        pytest.param(20 * MB, 3, id="20MB-3-kills", marks=pytest.mark.soak),
    ],
)
def test_a_receiver_killed_mid_transfer_resumes(
    make_profile: Callable[..., Profile], tmp_path: Path, size: int, kills: int
) -> None:
    """The receiver's `listen` is killed (SIGKILL) each time its file events show the download
    moving on, and started again: each start goes on from what was held (the sender sends at
    most 1.3 times the file in all), and the file saved at the end is the one sent."""
    relay = Relay(tmp_path, None, *PACED)
    try:
        resumed(relay, make_profile, tmp_path, size, kills)
    finally:
        relay.kill()


def resumed(
    relay: Relay, make_profile: Callable[..., Profile], tmp_path: Path, size: int, kills: int
) -> None:
    alice, bob = pair(make_profile, relay.url)
    source = tmp_path / "large.bin"
    digest = payload(source, size)
    alice_l = alice.listen()  # the sender stays online throughout
    alice_l.wait_listening()
    alice.run("send-file", "Bob", str(source))

    step = size // (kills + 2)  # how far each start gets before it is killed
    held_at_kill = 0
    for kill in range(kills):
        bob_l = bob.listen()
        bob_l.wait_for(lambda ev, t=held_at_kill + step: received_in(ev) >= t, timeout=60)
        now = received(bob_l)
        assert now < size, "the whole file came before the receiver could be killed"
        if kill > 0:
            # This start went on from the last: its first report is well past nothing.
            first = min(e["received_bytes"] for e in file_events(bob_l) if e["received_bytes"])
            assert first >= held_at_kill // 2, (first, held_at_kill)
        bob_l.kill()
        assert bob_l.proc.returncode == -signal.SIGKILL
        held_at_kill = now

    bob_l = bob.listen()
    bob_l.wait_for(
        lambda ev: any(e["event"] == "file" and e["state"] == "complete" for e in ev), timeout=90
    )
    assert bob_l.stop() == 0
    bob_l.assert_clean()
    row = offer_at(bob, "large.bin")
    assert (row["state"], row["received_bytes"], row["sha256"]) == ("complete", size, digest)
    target_path = tmp_path / "saved.bin"
    bob.run("save-file", str(row["id"]), str(target_path), "--wait", "0")
    assert sha256_of(target_path) == digest

    alice_l.wait_for(
        lambda ev: any(e["event"] == "file" and e["state"] == "complete" for e in ev), timeout=30
    )
    assert alice_l.stop() == 0
    alice_l.assert_clean()
    (ours,) = alice.run("files", "Bob").data
    assert (ours["state"], ours["received_bytes"]) == ("complete", size)
    assert size <= ours["sent_bytes"] <= 1.3 * size, ours["sent_bytes"] / size


def received_in(events: list[Json]) -> int:
    return max((e["received_bytes"] for e in events if e["event"] == "file"), default=0)


# -- the relay writes nothing while pieces pass through it ------------------------------------


class PipedRelay:
    """`python -m relay` whose output goes to a pipe (not a log file), so every regular file
    it holds open is one it opened itself."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay", "--host", "127.0.0.1", "--port", str(self.port), *args],
            cwd=ROOT,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.lines: list[str] = []
        started = threading.Event()

        def drain() -> None:
            assert self.proc.stdout is not None
            for raw in self.proc.stdout:
                self.lines.append(raw.decode(errors="replace").rstrip())
                if re.search(r"listening on ws://", self.lines[-1]):
                    started.set()

        threading.Thread(target=drain, daemon=True).start()
        if not started.wait(20):
            self.stop()
            raise RuntimeError("relay did not start: " + "\n".join(self.lines))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def piped_relay() -> Iterator[PipedRelay]:
    r = PipedRelay(*PACED)
    try:
        yield r
    finally:
        r.stop()


def files_open_for_writing(pid: int) -> list[str]:
    """Regular files process `pid` holds open for writing (O_WRONLY or O_RDWR), from
    /proc/<pid>/fd and /proc/<pid>/fdinfo."""
    found = []
    fds = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fds):
        try:
            target = os.readlink(fds / fd)
            mode = os.stat(fds / fd).st_mode
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
        except FileNotFoundError:  # closed meanwhile
            continue
        flags = int(re.search(r"^flags:\s*([0-7]+)", info, re.M).group(1), 8)  # type: ignore[union-attr]
        if stat.S_ISREG(mode) and flags & os.O_ACCMODE in (os.O_WRONLY, os.O_RDWR):
            found.append(f"fd {fd} -> {target} (flags {flags:o})")
    return found


def test_the_relay_opens_no_file_for_writing_during_a_transfer(
    piped_relay: PipedRelay, make_profile: Callable[..., Profile], tmp_path: Path
) -> None:
    alice, bob = pair(make_profile, piped_relay.url)
    size = 6 * MB
    source = tmp_path / "through.bin"
    digest = payload(source, size)
    alice_l, bob_l = alice.listen(), bob.listen()
    alice_l.wait_listening()
    bob_l.wait_listening()
    sender = threading.Thread(
        target=lambda: alice.run("send-file", "Bob", str(source), "--wait", "60"), daemon=True
    )
    sender.start()
    pid = piped_relay.proc.pid
    with (tmp_path / "probe").open("ab"):
        assert files_open_for_writing(os.getpid()), "the check sees a file open for writing"
    checks_while_moving = 0
    deadline = time.monotonic() + 60
    while True:
        assert files_open_for_writing(pid) == []
        moved = received(bob_l)
        complete = any(e["state"] == "complete" for e in file_events(bob_l))
        if 0 < moved < size and not complete:
            checks_while_moving += 1
        if complete:
            break
        assert time.monotonic() < deadline, "the file did not arrive"
        time.sleep(0.01)
    sender.join(60)
    assert checks_while_moving >= 10, checks_while_moving
    assert offer_at(bob, "through.bin")["sha256"] == digest
    assert piped_relay.proc.poll() is None
    for listener in (alice_l, bob_l):
        assert listener.stop() == 0
