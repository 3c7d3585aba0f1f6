"""`anonchat --self-test`: the whole journey, offscreen, in one process, in under a minute.

It exists for the packaged app: a missing hidden import, Qt plugin, native library or data
file shows up here as a failed step instead of reaching a user. Two throwaway profiles are
created through the real wizard (with cheap Argon2id parameters) in a temporary directory,
talk through an embedded relay on a free loopback port, add each other by a QR code written
to a PNG file and read back through the add-contact dialog, exchange a message each way
through the composer and wait for the delivered receipts (Alice first accepts Bob's message
request in its section of her window). Then everything is shut down and
the directory removed.

One line per step on stdout. The exit status is 0 when every step worked, otherwise
`FAILED_BASE + n` where n is the number of the first step that failed (or timed out).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO, TypeVar

import qasync
from PySide6.QtWidgets import QApplication

from app.core.profile import profile_paths
from app.core.qr import decode_file, make_png
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.domain.contacts import Contact
from app.domain.messages import Direction, Message, Status
from app.ui.embedded_relay import EmbeddedRelay, start_embedded_relay
from app.ui.launcher import Launcher
from app.ui.onboarding import WizardPage
from app.ui.window import MainWindow

TIMEOUT = 60.0
CLEANUP_TIMEOUT = 15.0
FAILED_BASE = 10
STEPS = (
    "start the embedded relay",
    "create Alice's profile in the wizard",
    "create Bob's profile in the wizard",
    "show Alice's code as a QR image",
    "Bob adds Alice from the QR image",
    "Alice accepts Bob's message request",
    "Alice -> Bob, delivered",
    "Bob -> Alice, delivered",
    "clean up",
)
T = TypeVar("T")


class StepFailed(Exception):
    """A step's check did not hold; the message says what was seen."""


async def until(cond: Callable[[], Awaitable[T | None]], seconds: float, what: str) -> T:
    """Poll `cond` on the loop until it returns something truthy."""
    deadline = time.monotonic() + seconds
    while True:
        value = await cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StepFailed(f"timed out after {seconds:.0f} s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Person:
    name: str
    launcher: Launcher

    @property
    def window(self) -> MainWindow:
        if self.launcher.window is None:
            raise StepFailed(f"{self.name}'s main window is gone")
        return self.launcher.window

    async def contact(self) -> Contact | None:
        summaries = await self.window.engine.summaries()
        return summaries[0].contact if summaries else None

    async def established(self) -> bool:
        summaries = await self.window.engine.summaries()
        return bool(summaries) and summaries[0].established

    async def find(self, contact: Contact, body: str, direction: Direction) -> Message | None:
        for message in await self.window.engine.messages(contact.id, 20):
            if message.body == body and message.direction is direction:
                return message
        return None


@dataclass
class SelfTest:
    out: TextIO
    workdir: Path
    step: int = 0
    relay: EmbeddedRelay | None = None
    people: list[Person] = field(default_factory=list)
    card: str = ""
    passphrase: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    started: float = field(default_factory=time.monotonic)

    def begin(self, number: int) -> None:
        self.step = number
        self.started = time.monotonic()

    def passed(self, detail: str = "") -> None:
        took = time.monotonic() - self.started
        extra = f" ({detail})" if detail else ""
        print(
            f"[{self.step}/{len(STEPS)}] {STEPS[self.step - 1]}: ok{extra} {took:.2f} s",
            file=self.out,
            flush=True,
        )

    def failed(self, reason: str) -> None:
        print(
            f"[{self.step}/{len(STEPS)}] {STEPS[self.step - 1]}: FAILED: {reason}",
            file=self.out,
            flush=True,
        )

    # -- steps ---------------------------------------------------------------------------

    async def start_relay(self) -> None:
        self.relay = await start_embedded_relay()
        self.passed(self.relay.url)

    async def create(self, name: str) -> Person:
        assert self.relay is not None
        paths = profile_paths(str(self.workdir / name.lower()))
        launcher = Launcher(paths, self.relay.url, INSECURE_FAST_PARAMS)
        person = Person(name, launcher)
        self.people.append(person)
        page = launcher.show_gate()
        if not isinstance(page, WizardPage):
            raise StepFailed(f"expected the wizard, got {type(page).__name__}")
        page.name.setText(name)
        page.passphrase.setText(self.passphrase)
        page.repeat.setText(self.passphrase)
        if not page.custom.isChecked() or page.relay.text() != self.relay.url:
            raise StepFailed("the wizard did not preselect the given relay")
        page.create_button.click()
        deadline = time.monotonic() + 20
        while not launcher.ready.is_set():
            if page.error.isVisibleTo(page) and page.error.text():
                raise StepFailed(f"the wizard said: {page.error.text()}")
            if time.monotonic() > deadline:
                raise StepFailed("timed out after 20 s waiting for the main window")
            await asyncio.sleep(0.05)
        window = person.window
        if not window.isVisible():
            raise StepFailed("the main window is not visible")
        if not (paths.directory / "lock").exists() or not paths.header.exists():
            raise StepFailed("the profile was not written to disk")
        self.passed(f"window {window.width()}x{window.height()}")
        return person

    async def show_code(self, alice: Person) -> Path:
        dialog = alice.window.show_my_code()

        async def card() -> str:
            return dialog.card

        self.card = await until(card, 10, "the card in the My code dialog")
        if dialog.qr.pixmap().isNull():
            raise StepFailed("the My code dialog shows no QR image")
        if dialog.text.toPlainText() != self.card:
            raise StepFailed("the My code dialog's text is not the card")
        dialog.close()
        image = self.workdir / "alice-code.png"
        make_png(self.card, image)
        if decode_file(image) != self.card:
            raise StepFailed("the QR image does not read back as the card")
        self.passed(f"{len(self.card)} characters, {image.stat().st_size} byte PNG")
        return image

    async def add_from_image(self, bob: Person, image: Path) -> None:
        dialog = bob.window.show_add_contact()
        await dialog.load_file(image)

        async def read() -> bool:
            return bool(dialog.whose.text()) or dialog.error.isVisibleTo(dialog)

        await until(read, 10, "the add-contact dialog to read the code")
        if dialog.error.isVisibleTo(dialog):
            raise StepFailed(f"the add-contact dialog said: {dialog.error.text()}")
        if "Alice" not in dialog.whose.text():
            raise StepFailed(f"the dialog does not say whose code it is: {dialog.whose.text()!r}")
        if not dialog.add_button.isEnabled():
            raise StepFailed("the Add contact button stays disabled")
        dialog.add_button.click()
        contact = await until(bob.contact, 10, "Alice in Bob's contact list")
        if contact.display_name != "Alice":
            raise StepFailed(f"Bob's new contact is called {contact.display_name!r}")
        self.passed()

    async def handshake(self, alice: Person, bob: Person) -> None:
        section = alice.window.requests

        async def listed() -> bool:
            return section.isVisibleTo(alice.window) and section.model.rowCount() > 0

        await until(listed, 20, "Bob's message request in Alice's window")
        request = section.model.summary(0).request
        section.list.setCurrentIndex(section.model.index(0))
        panel = alice.window.panel

        async def opened() -> bool:
            shown = panel.contact is not None and panel.contact.id == request.id
            return shown and panel.request_bar.accept.isVisibleTo(panel)

        await until(opened, 10, "the request open with its Accept button")
        panel.request_bar.accept.click()
        contact = await until(alice.contact, 20, "Bob in Alice's contact list")
        if contact.display_name != "Bob":
            raise StepFailed(f"Alice's new contact is called {contact.display_name!r}")
        await until(alice.established, 20, "the handshake on Alice's side")
        await until(bob.established, 20, "the handshake on Bob's side")
        self.passed()

    async def message(self, sender: Person, receiver: Person, body: str) -> None:
        to = await until(sender.contact, 5, f"{receiver.name} in {sender.name}'s list")
        back = await until(receiver.contact, 5, f"{sender.name} in {receiver.name}'s list")
        window = sender.window
        window.open_contact(to)
        panel = window.panel

        async def ready() -> bool:
            return panel.contact is not None and panel.contact.id == to.id

        await until(ready, 10, f"{sender.name}'s conversation with {receiver.name}")
        if not panel.composer.isEnabled():
            raise StepFailed("the composer is disabled")
        panel.composer.setPlainText(body)
        panel.send()
        if panel.composer.toPlainText():
            raise StepFailed("the composer kept the text after sending")

        async def arrived() -> Message | None:
            return await receiver.find(back, body, Direction.INCOMING)

        async def delivered() -> Message | None:
            sent = await sender.find(to, body, Direction.OUTGOING)
            if sent is not None and sent.status in (Status.DELIVERED, Status.READ):
                return sent
            return None

        await until(arrived, 20, f"the message in {receiver.name}'s store")
        sent = await until(delivered, 20, "the delivered receipt")
        self.passed(sent.status.value)

    async def cleanup(self) -> None:
        for person in self.people:
            await person.launcher.shutdown()
            if person.launcher.window is not None:
                person.launcher.window.hide()
        if self.relay is not None:
            relay, self.relay = self.relay, None
            await relay.close()

    async def steps(self) -> None:
        self.begin(1)
        await self.start_relay()
        self.begin(2)
        alice = await self.create("Alice")
        self.begin(3)
        bob = await self.create("Bob")
        self.begin(4)
        image = await self.show_code(alice)
        self.begin(5)
        await self.add_from_image(bob, image)
        self.begin(6)
        await self.handshake(alice, bob)
        self.begin(7)
        await self.message(alice, bob, "hello Bob, from the self-test")
        self.begin(8)
        await self.message(bob, alice, "hello Alice, from the self-test")


async def run_steps(out: TextIO, workdir: Path, limit: float) -> tuple[SelfTest, int]:
    """Every step within `limit` seconds, then clean-up whatever happened; returns the test
    and the number of the first failed step (0 when all passed)."""
    test = SelfTest(out, workdir)
    failed = 0
    try:
        async with asyncio.timeout(limit):
            await test.steps()
    except TimeoutError:
        failed = test.step
        test.failed(f"the self-test took longer than {limit:.0f} s")
    except Exception as exc:
        failed = test.step
        test.failed(str(exc) or type(exc).__name__)
    test.begin(len(STEPS))
    try:
        async with asyncio.timeout(CLEANUP_TIMEOUT):
            await test.cleanup()
    except Exception as exc:
        test.failed(str(exc) or type(exc).__name__)
        failed = failed or len(STEPS)
    return test, failed


def run_self_test(args: argparse.Namespace | None = None, out: TextIO | None = None) -> int:
    """Run the self-test on a qasync loop of its own; call before any QApplication exists so
    that the offscreen platform takes effect."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    limit = float(getattr(args, "timeout", None) or TIMEOUT)
    stream = out if out is not None else sys.stdout
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    begun = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="anonchat-self-test-") as name:
        workdir = Path(name)
        with loop:
            test, failed = loop.run_until_complete(run_steps(stream, workdir, limit))
            with contextlib.suppress(Exception):
                loop.run_until_complete(asyncio.sleep(0.05))
    if workdir.exists():
        test.failed("the temporary directory is still there")
        failed = failed or len(STEPS)
    elif not failed:
        test.passed("temporary profiles removed")
    took = time.monotonic() - begun
    verdict = "passed" if not failed else f"FAILED at step {failed}"
    print(f"self-test {verdict} in {took:.1f} s", file=stream, flush=True)
    return FAILED_BASE + failed if failed else 0
