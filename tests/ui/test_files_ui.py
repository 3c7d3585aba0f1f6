"""Files and pictures in the window, between real profiles through a real relay: a picture
pasted into the composer goes across and its thumbnail is drawn in the other window's bubble
at once (the whole picture once downloaded), a file dropped on the conversation or chosen with
the attach button is sent, a transfer shows its progress and can be cancelled and retried, Save
as writes the exact bytes, Enter opens a file, and Settings sets the automatic download limit."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QGuiApplication, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog

from app.domain.files import FileInfo, FileState, safe_file_name
from app.domain.messages import Direction, Message
from app.ui.attachments import PASTED_NAME
from app.ui.conversation import ConversationPanel
from app.ui.file_bubble import BAR_H, GAP
from app.ui.models import SummaryRole
from app.ui.window import MainWindow
from tests.ui.conftest import (
    Relay,
    accept_in_window,
    alice_and_bob,
    eventually,
    headless,
    launch,
    me_and_peers,
    until,
    write_to,
)
from tests.ui.test_message_actions import drawn, option_for, rows

RED, BLUE = QColor(220, 30, 30), QColor(30, 60, 220)


def two_colours(width: int = 400, height: int = 300) -> QImage:
    """Red on the left half, blue on the right: easy to find again in what is drawn."""
    image = QImage(width, height, QImage.Format.Format_RGB32)
    image.fill(RED)
    for x in range(width // 2, width):
        for y in range(height):
            image.setPixelColor(x, y, BLUE)
    return image


def near(c: QColor, want: QColor, slack: int = 40) -> bool:
    got, wanted = (c.red(), c.green(), c.blue()), (want.red(), want.green(), want.blue())
    return all(abs(a - b) <= slack for a, b in zip(got, wanted, strict=True))


def with_file(panel: ConversationPanel) -> Message | None:
    return next((m for m in rows(panel) if m.file is not None), None) if panel.model else None


def file_of(panel: ConversationPanel) -> FileInfo:
    m = with_file(panel)
    assert m is not None
    assert m.file is not None
    return m.file


def spoken(panel: ConversationPanel, message: Message) -> str:
    _, index = option_for(panel, message)
    said = str(index.data(Qt.ItemDataRole.AccessibleTextRole))  # type: ignore[attr-defined]
    return said.replace("\u2068", "").replace("\u2069", "")  # the isolates around names


def picture_drawn(panel: ConversationPanel, message: Message) -> tuple[QColor, QColor]:
    """The colours drawn a quarter and three quarters across the bubble's picture."""
    image = drawn(panel, message)
    option, index = option_for(panel, message)
    option.rect.moveTo(0, 0)
    media = panel.delegate.media_rect(option, index)  # type: ignore[arg-type]
    assert media is not None
    assert media.width() >= 200  # the picture is shown large, not as an icon
    y = media.center().y()
    left = image.pixelColor(media.left() + media.width() // 4, y)
    right = image.pixelColor(media.left() + media.width() * 3 // 4, y)
    return left, right


async def contacts(alice: MainWindow, bob: MainWindow) -> None:
    """Bob adds Alice and says hello; Alice accepts; both conversations open."""
    await write_to(bob.engine, await alice.engine.card(), "hello")
    await accept_in_window(alice, "Bob")
    await until(lambda: bob.contacts.rowCount() == 1, what="Alice in Bob's list")
    bob.open_contact(bob.contacts.summary(0).contact)
    await until(lambda: bob.panel.model is not None and rows(bob.panel), what="Bob's chat")
    await until(lambda: bool(alice.panel.model and rows(alice.panel)), what="Alice's chat")


def test_a_pasted_picture_shows_its_thumbnail_in_the_other_window(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with alice_and_bob(tmp_path) as (alice, bob, _url):
            # Alice downloads nothing by herself: set in Settings.
            settings = alice.show_settings()
            assert settings.auto_download.value() == 25
            settings.auto_download.setValue(0)
            assert settings.auto_download.text() == "Never"
            assert await settings.save_and_close()
            assert alice.engine.auto_download() == 0

            await contacts(alice, bob)
            picture = two_colours()
            QGuiApplication.clipboard().setImage(picture)
            bob.panel.composer.setFocus()
            QTest.keyClick(bob.panel.composer, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
            assert bob.panel.composer.toPlainText() == ""  # sent, not written in
            await until(lambda: with_file(bob.panel) is not None, what="Bob's picture bubble")
            ours = file_of(bob.panel)
            assert (ours.name, ours.mime, ours.direction) == (
                PASTED_NAME,
                "image/png",
                Direction.OUTGOING,
            )
            assert 0 < len(ours.thumbnail) <= 16 * 1024
            sent = QImage.fromData(await bob.engine.read_file(ours.id))
            assert sent.size() == picture.size()
            assert sent.pixelColor(10, 10) == RED

            # Alice's bubble draws the thumbnail at once: the file itself waits for Download.
            await until(lambda: with_file(alice.panel) is not None, what="Alice's bubble")
            theirs = with_file(alice.panel)
            assert theirs is not None
            assert theirs.file is not None
            assert theirs.file.state is FileState.OFFERED
            assert theirs.file.thumbnail == ours.thumbnail
            left, right = picture_drawn(alice.panel, theirs)
            assert near(left, RED), left.name()
            assert near(right, BLUE), right.name()
            said = spoken(alice.panel, theirs)
            assert f"Picture {PASTED_NAME}" in said
            assert "Enter: download" in said
            row = alice.contacts.index(0, 0)
            await until(
                lambda: row.data(SummaryRole).last.file is not None, what="the list's preview"
            )
            listed = str(row.data(Qt.ItemDataRole.AccessibleTextRole))
            assert "last: Picture: Pasted picture.png" in listed.replace("\u2068", "").replace(
                "\u2069", ""
            )

            # Download, from the link on the bubble: then the whole picture is drawn.
            view = alice.panel.view
            option, index = option_for(alice.panel, theirs)
            link = alice.panel.delegate.file_link_rect(option, index)  # type: ignore[arg-type]
            assert link is not None
            QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=link.center())
            await until(
                lambda: file_of(alice.panel).state is FileState.COMPLETE, what="the download"
            )
            done = with_file(alice.panel)
            assert done is not None
            assert done.file is not None
            pictures = alice.panel.delegate.pictures
            drawn(alice.panel, done)  # drawing it asks for the whole picture
            await until(
                lambda: (
                    (shown := pictures.shown(done.file)) is not None  # type: ignore[arg-type]
                    and shown.size() == picture.size()
                ),
                what="the whole picture decoded",
            )
            left, right = picture_drawn(alice.panel, done)
            assert near(left, RED, 8), left.name()
            assert near(right, BLUE, 8), right.name()

            # A reply to the picture says what it answers.
            alice.panel.start_reply(done.id)
            answering = alice.panel.answer_bar.text.text().replace("\u2068", "")
            assert answering.replace("\u2069", "") == f"Replying to Bob: Picture: {PASTED_NAME}"
            QTest.keyClicks(alice.panel.composer, "lovely")
            QTest.keyClick(alice.panel.composer, Qt.Key.Key_Return)
            await until(lambda: rows(alice.panel)[-1].body == "lovely", what="the reply")
            assert spoken(alice.panel, rows(alice.panel)[-1]).startswith(
                f"In reply to Bob: Picture: {PASTED_NAME}. You ("
            )

    run(body())


def drop_on(panel: ConversationPanel, data: QMimeData) -> bool:
    """`data` dragged over the conversation and dropped, as Qt delivers a drop from a file
    manager; whether the drop was taken."""
    action, left, none = (
        Qt.DropAction.CopyAction,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    enter = QDragEnterEvent(QPoint(30, 30), action, data, left, none)
    QApplication.sendEvent(panel, enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(QPointF(30, 30), action, data, left, none)
    QApplication.sendEvent(panel, drop)
    return drop.isAccepted()


def test_a_dropped_file_goes_and_a_chosen_one_waits_for_the_contact(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_peers(tmp_path) as (window, url, peers):
            peer = await headless(tmp_path / "peer", "Peer", url)
            peers.append(peer)
            to_me = await write_to(peer, await window.engine.card(), "hi")
            contact = await accept_in_window(window, "Peer")
            window.open_contact(contact)
            panel = window.panel
            await until(lambda: panel.model is not None and len(rows(panel)) == 1, what="chat")
            await until(lambda: "Online" in panel.subtitle.text(), what="the peer online")

            notes = tmp_path / "notes.txt"
            notes.write_bytes(b"milk, eggs, \x00 bread\n" * 500)
            data = QMimeData()
            data.setUrls([QUrl.fromLocalFile(str(notes))])
            data.setText(QUrl.fromLocalFile(str(notes)).toString())  # as file managers do
            assert drop_on(panel, data)
            await until(lambda: with_file(panel) is not None, what="the dropped file's bubble")
            assert file_of(panel).name == "notes.txt"

            async def peer_has_it() -> bool:
                return any(f.state is FileState.COMPLETE for f in await peer.files(to_me))

            await eventually(peer_has_it, what="the peer's copy")
            (theirs,) = await peer.files(to_me)
            assert await peer.read_file(theirs.id) == notes.read_bytes()
            await until(lambda: file_of(panel).state is FileState.COMPLETE, what="sent whole")
            sent = with_file(panel)
            assert sent is not None
            said = spoken(panel, sent)
            assert said.startswith("You (")
            assert "File notes.txt, 10.0 KB" in said

            # A folder is not sent, and the window says so.
            folder = QMimeData()
            folder.setUrls([QUrl.fromLocalFile(str(tmp_path))])
            assert drop_on(panel, folder)
            assert panel.error.text() == "Only files can be sent (not folders)."
            assert len([m for m in rows(panel) if m.file]) == 1

            # Text dropped is not a file: the conversation does not take it.
            words = QMimeData()
            words.setText("just words")
            assert not drop_on(panel, words)

            # The peer goes away; a file chosen with the attach button waits for them.
            await peer.close()
            await until(lambda: "Offline" in panel.subtitle.text(), what="the peer offline")
            photo = tmp_path / "photo.png"
            assert two_colours(64, 48).save(str(photo))
            QTest.mouseClick(panel.attach_button, Qt.MouseButton.LeftButton)
            chooser = panel.files.chooser
            assert isinstance(chooser, QFileDialog)
            chooser.selectFile(str(photo))
            chooser.accept()
            await until(lambda: len([m for m in rows(panel) if m.file]) == 2, what="the photo")
            waiting = rows(panel)[-1]
            assert waiting.file is not None
            assert waiting.file.name == "photo.png"
            assert waiting.file.thumbnail  # made from the file, sent with the offer
            assert "Waiting for Peer to come online" in spoken(panel, waiting)

            # Cancel from the bubble's link, then Retry from the message's menu.
            option, index = option_for(panel, waiting)
            link = panel.delegate.file_link_rect(option, index)  # type: ignore[arg-type]
            assert link is not None
            QTest.mouseClick(panel.view.viewport(), Qt.MouseButton.LeftButton, pos=link.center())
            await until(lambda: rows(panel)[-1].file.state is FileState.CANCELLED, what="cancel")  # type: ignore[union-attr]
            assert "Cancelled" in spoken(panel, rows(panel)[-1])
            view = panel.view
            view.setCurrentIndex(view.model().index(len(rows(panel)) - 1, 0))
            view._menu_at(view.visualRect(view.currentIndex()).center())
            assert view.menu is not None
            offered = [a.text().replace("&", "") for a in view.menu.actions() if a.text()]
            assert offered[:3] == ["Open", "Save as…", "Retry transfer"]
            assert offered[3:] == ["Reply", "React…", "Delete for me…", "Delete for everyone…"]
            assert all(a.text() for a in view.menu.actions() if not a.isSeparator())
            retry = next(a for a in view.menu.actions() if a.text() == "Re&try transfer")
            view.menu.close()
            retry.trigger()
            await until(lambda: rows(panel)[-1].file.state is FileState.QUEUED, what="retried")  # type: ignore[union-attr]

    run(body())


def test_a_transfer_in_progress_cancelled_retried_saved_and_opened(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "runtime"  # where opened copies go: this user's private folder
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))

    data = hashlib.sha256(b"seed").digest() * (6 * 1024 * 1024 // 32)  # 6 MB

    async def body() -> None:
        relay = Relay(send_rate=20)  # about 1 MB a second: a transfer to watch
        url = await relay.start()
        launcher = await launch(tmp_path / "me", "Me", url)
        peer = await headless(tmp_path / "peer", "Peer", url)
        try:
            window = launcher.window
            assert window is not None
            to_me = await write_to(peer, await window.engine.card(), "a big one coming")
            contact = await accept_in_window(window, "Peer")
            window.open_contact(contact)
            panel = window.panel
            await until(lambda: panel.model is not None and len(rows(panel)) == 1, what="chat")
            await peer.send_file(to_me, data, name="../big report.bin")

            def moving() -> bool:
                m = with_file(panel)
                return (
                    m is not None
                    and m.file is not None
                    and m.file.state is FileState.TRANSFERRING
                    and panel.model is not None
                    and panel.model.rates.get(m.id, 0) > 0
                    and 0 < m.file.received_bytes < len(data)
                )

            await until(moving, 30, what="the transfer under way")
            message = with_file(panel)
            assert message is not None
            said = spoken(panel, message)
            assert "/s · " in said
            assert " left" in said
            assert "%)" in said

            # The progress bar: filled as far as the transfer got, in the bubble's ink.
            option, index = option_for(panel, message)
            option.rect.moveTo(0, 0)
            found = panel.delegate.file_origin(option, index)  # type: ignore[arg-type]
            assert found is not None
            _, block, origin = found
            assert block.bar
            image = drawn(panel, message)
            bar_y = origin.y() + block.line - GAP - BAR_H // 2
            start = image.pixelColor(origin.x() + 3, bar_y)
            end = image.pixelColor(origin.x() + block.size.width() - 3, bar_y)
            ink = panel.palette().color(panel.palette().ColorRole.Text)
            assert near(start, ink, 30), (start.name(), ink.name())
            assert not near(end, ink, 30), end.name()

            # Cancel from the message's menu (the keyboard's way to it).
            view = panel.view
            view.setCurrentIndex(view.model().index(len(rows(panel)) - 1, 0))
            view.setFocus()
            QTest.keyClick(view, Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier)
            assert view.menu is not None
            cancel = next(a for a in view.menu.actions() if a.text() == "Cancel &transfer")
            view.menu.close()
            cancel.trigger()
            await until(lambda: file_of(panel).state is FileState.CANCELLED, what="cancelled")
            held = file_of(panel).received_bytes
            assert 0 < held < len(data)

            # Ctrl+R retries; it goes on from what arrived and completes.
            QTest.keyClick(view, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
            await until(lambda: file_of(panel).state is FileState.COMPLETE, 60, what="done")
            assert "Enter: open" in spoken(panel, with_file(panel))  # type: ignore[arg-type]

            # Save as: the chooser offers the name made safe; the bytes written are exact.
            info = file_of(panel)
            panel.file_action(info.id, "save")
            saver = panel.files.saver
            assert isinstance(saver, QFileDialog)
            assert Path(saver.selectedFiles()[0]).name == safe_file_name("../big report.bin")
            target = tmp_path / "saved" / "report.bin"
            target.parent.mkdir()
            saver.selectFile(str(target))
            saver.accept()
            await until(lambda: target.exists(), what="the saved file")
            assert target.read_bytes() == data

            # Enter opens it with the system's application (a copy, in the runtime folder).
            opened: list[QUrl] = []
            panel.files.open_url = lambda url: opened.append(url) or True
            view.setFocus()
            QTest.keyClick(view, Qt.Key.Key_Return)
            await until(lambda: bool(opened), what="the file opened")
            copy = Path(opened[0].toLocalFile())
            assert await asyncio.to_thread(copy.read_bytes) == data
            assert copy.parent != target.parent
            assert runtime in copy.parents
        finally:
            await peer.close()
            await launcher.shutdown()
            await relay.close()

    run(body(), 120)
