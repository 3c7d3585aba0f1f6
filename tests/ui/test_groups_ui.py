"""Groups in the window (docs/groups.md), real widgets offscreen over real engines on a real
relay: a group made through the New group dialog, its invitation with the requests on the
other side and Join, messages with their authors painted, replies, "delivered to n of m" and
the members each copy reached, the members dialog's marks and an admin's removal, and a
group left staying readable with no composer."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QStyle, QStyleOptionViewItem

from app.core.engine import Engine
from app.domain.contacts import Contact
from app.domain.groups import MAX_GROUP_MEMBERS, GroupState
from app.domain.messages import Direction, Message
from app.ui.a11y import nameless
from app.ui.attachments import Outgoing
from app.ui.bubble_parts import PAD
from app.ui.contact_delegate import ContactDelegate, last_line
from app.ui.contact_model import describe
from app.ui.conversation import NO_GROUP_FILES
from app.ui.delegates import Bubble, BubbleDelegate
from app.ui.groups import ContactPicker, GroupDialog, NewGroupDialog, member_badges
from app.ui.identicon import group_identicon, identicon
from app.ui.models import GroupLine, GroupRole
from app.ui.text import safe_text
from app.ui.window import MainWindow
from tests.ui.conftest import alice_bob_and_carol, eventually, until


def list_names(window: MainWindow) -> list[str]:
    m = window.contacts
    return [m.summary(i).contact.display_name for i in range(m.rowCount())]


def rows(window: MainWindow) -> list[Message]:
    model = window.panel.model
    return [] if model is None else [model.message(i) for i in range(model.rowCount())]


def row_of(window: MainWindow, body: str) -> int | None:
    return next((i for i, m in enumerate(rows(window)) if m.body == body), None)


def bubble(window: MainWindow, body: str) -> tuple[Bubble, GroupLine | None]:
    """How the message with this text is laid out in the open conversation, as painted."""
    row = row_of(window, body)
    assert row is not None, body
    view = window.panel.view
    index = view.model().index(row, 0)
    option = QStyleOptionViewItem()
    option.initFrom(view)
    option.rect = view.visualRect(index)
    delegate = view.itemDelegate()
    assert isinstance(delegate, BubbleDelegate)
    laid = delegate.layout_of(option, index)
    assert laid is not None
    return laid, index.data(GroupRole)


def painted(window: MainWindow, body: str) -> QImage:
    """The row with this text drawn by the bubble delegate, on its own."""
    row = row_of(window, body)
    assert row is not None
    view = window.panel.view
    index = view.model().index(row, 0)
    option = QStyleOptionViewItem()
    option.initFrom(view)
    delegate = view.itemDelegate()
    size = delegate.sizeHint(option, index)
    option.rect = view.visualRect(index).adjusted(0, 0, 0, 0)
    option.rect.moveTo(0, 0)
    option.rect.setHeight(size.height())
    image = QImage(option.rect.width(), size.height(), QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    delegate.paint(painter, option, index)
    painter.end()
    return image


async def invited(engine: Engine, name: str) -> int:
    """The row of the invitation to `name` once it arrives."""

    async def arrived() -> bool:
        return any(g.name == name for g in await engine.group_invites())

    await eventually(arrived, what=f"the invitation to {name}")
    return next(g.id for g in await engine.group_invites() if g.name == name)


def type_and_send(window: MainWindow, text: str) -> None:
    composer = window.panel.composer
    composer.setFocus()
    QTest.keyClicks(composer, text)
    QTest.keyClick(composer, Qt.Key.Key_Return)


def test_a_group_made_joined_written_to_answered_counted_managed_and_left(
    run, tmp_path: Path
) -> None:
    async def body() -> None:
        async with alice_bob_and_carol(tmp_path) as (alice, bob, carol, _):
            a = alice.engine
            to_bob = (await a.find_contact("Bob")).id
            to_carol = (await a.find_contact("Carol")).id
            await a.verify(to_bob, await a.safety_number(to_bob))

            # New group: from the toolbar's action, or the button beside the contact list.
            assert alice.new_group_action.shortcut().toString() == "Ctrl+G"
            assert alice.new_group_button.isVisibleTo(alice)
            QTest.mouseClick(alice.new_group_button, Qt.MouseButton.LeftButton)
            dialog = next(d for d in alice._dialogs if isinstance(d, NewGroupDialog))
            await dialog.loaded
            assert nameless(dialog) == []
            assert f"at most {MAX_GROUP_MEMBERS} members" in dialog.intro.text()
            assert dialog.picker.limit == MAX_GROUP_MEMBERS - 1
            assert "at most 99" in dialog.picker.count.text()
            assert not dialog.create_button.isEnabled()
            QTest.keyClicks(dialog.name, "Friends")
            dialog.picker.search.setText("car")  # the search hides who does not match
            shown = [
                dialog.picker.list.item(i).text()
                for i in range(dialog.picker.list.count())
                if not dialog.picker.list.item(i).isHidden()
            ]
            assert shown == [safe_text("Carol")]
            assert dialog.picker.set_chosen(to_carol)
            dialog.picker.search.clear()
            assert dialog.picker.set_chosen(to_bob)
            assert sorted(dialog.picker.chosen()) == sorted([to_bob, to_carol])
            QTest.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)

            # The group is a conversation in Alice's list, drawn as a group, and opens.
            await until(lambda: "Friends" in list_names(alice), what="the group in the list")
            await until(
                lambda: alice.panel.contact is not None and alice.panel.contact.is_group,
                what="the group open",
            )
            await until(lambda: alice.panel.group is not None, what="the group read")
            summary = alice.contacts.summary(alice.contacts.row_of(alice.panel.contact.id))  # type: ignore[arg-type,union-attr]
            assert summary.contact.is_group
            assert "group" in describe(summary)
            assert "online" not in describe(summary)
            assert "offline" not in describe(summary)
            assert last_line(summary) == "No messages yet"
            panel = alice.panel
            assert panel.members_button.isVisibleTo(alice)
            assert not panel.safety_button.isVisibleTo(alice)
            assert not panel.attach_button.isVisibleTo(alice)
            assert not panel.timer_button.isVisibleTo(alice)
            assert panel.composer.isEnabled()
            assert "3 members" in panel.subtitle.text()
            assert nameless(alice) == []
            # Its row's picture is the group's (square, with the two people), not a face.
            row_image = QImage(320, 60, QImage.Format.Format_ARGB32)
            row_image.fill(QColor("white"))
            option = QStyleOptionViewItem()
            option.initFrom(alice.contact_list)
            option.rect = row_image.rect()
            option.state = QStyle.StateFlag.State_Enabled
            painter = QPainter(row_image)
            index = alice.contacts.index(alice.contacts.row_of(summary.contact.id) or 0, 0)
            ContactDelegate(alice.contact_list).paint(painter, option, index)
            painter.end()
            fm = option.fontMetrics
            face = fm.height() * 2 + 8
            expected = group_identicon(summary.contact.identity_keys, face)
            # Inside the rounded square's corner, where a round face would leave the ground.
            assert expected.pixelColor(4, 4).alpha() == 255
            assert row_image.pixelColor(8 + 4, 8 + 4) == expected.pixelColor(4, 4)

            # Bob: the invitation waits with the message requests; Join.
            await until(lambda: bob.requests.isVisible(), what="the invitation in Bob's window")
            await until(lambda: bob.requests.invites.rowCount() == 1, what="one invitation")
            assert bob.requests.header.text() == "Message requests (1)"
            assert bob.tray.last_notification is not None
            assert "invited you to the group Friends" in bob.tray.last_notification[1]
            invite = bob.requests.invites.invite(0)
            assert invite.name == "Friends"
            assert invite.invited_by == "Alice"
            tip = str(bob.requests.invites.index(0).data(Qt.ItemDataRole.ToolTipRole))
            assert safe_text("Alice") + " invited you" in tip
            assert "Friends" not in list_names(bob)
            bob.requests.invite_list.setCurrentIndex(bob.requests.invites.index(0))
            await until(lambda: bob.panel.invite_bar.isVisibleTo(bob), what="the invitation open")
            assert not bob.panel.composer.isEnabled()
            assert safe_text("Alice") + " invited you" in bob.panel.invite_bar.text.text()
            QTest.mouseClick(bob.panel.invite_bar.join, Qt.MouseButton.LeftButton)
            await until(lambda: "Friends" in list_names(bob), what="the group in Bob's list")
            await until(lambda: bob.panel.composer.isEnabled(), what="Bob can write")
            assert not bob.panel.invite_bar.isVisibleTo(bob)
            await until(lambda: not bob.requests.isVisible(), what="no invitation left")
            await carol.join_group(await invited(carol, "Friends"))

            # Bob writes in the group; Alice sees it under his name and picture.
            type_and_send(bob, "hello from bob")
            await until(lambda: row_of(alice, "hello from bob") is not None, what="Bob's message")
            laid, line = bubble(alice, "hello from bob")
            assert line is not None
            assert line.author == safe_text("Bob")
            assert laid.author == safe_text("Bob")
            assert laid.author_keys == bob.engine.identity.public.to_bytes()
            incoming = rows(alice)[row_of(alice, "hello from bob") or 0]
            assert incoming.direction is Direction.INCOMING
            said = (
                alice.panel.view.model()
                .index(row_of(alice, "hello from bob") or 0, 0)
                .data(Qt.ItemDataRole.AccessibleTextRole)
            )
            assert safe_text("Bob") + ": " in said
            # Painted: Bob's picture, then his name, on the line above the bubble.
            image = painted(alice, "hello from bob")
            line_h = alice.panel.view.fontMetrics().height()
            above = laid.top - line_h - PAD // 2
            face = identicon(laid.author_keys, line_h)
            centre = image.pixelColor(PAD + line_h // 2, above + line_h // 2)
            assert centre == face.pixelColor(line_h // 2, line_h // 2)
            inked = {
                image.pixelColor(x, y).rgb()
                for x in range(PAD + line_h + 2, PAD + line_h + 60)
                for y in range(above, above + line_h)
            }
            assert len(inked) > 3  # the name's letters, not an empty band
            summary = alice.contacts.summary(alice.contacts.row_of(summary.contact.id) or 0)
            await until(
                lambda: "hello from bob" in last_line(alice.contacts.summary(0)),
                what="the list's last line",
            )
            assert last_line(alice.contacts.summary(0)).startswith(safe_text("Bob") + ": ")

            # Alice answers Bob's message; the reply quotes him by name. Groups take no
            # reactions, edits or deletion for everyone: the menu does not offer them.
            bob_row = rows(alice)[row_of(alice, "hello from bob") or 0].id
            panel.start_reply(bob_row)
            assert safe_text("Bob") in panel.answer_bar.text.text()
            type_and_send(alice, "welcome bob")
            await until(lambda: row_of(alice, "welcome bob") is not None, what="Alice's reply")
            laid, line = bubble(alice, "welcome bob")
            assert laid.quote is not None
            assert laid.quote[0] == safe_text("Bob")
            view = panel.view
            view._menu_at(
                view.visualRect(view.model().index(row_of(alice, "welcome bob") or 0, 0)).center()
            )
            assert view.menu is not None
            offered = [x.text().replace("&", "") for x in view.menu.actions() if x.text()]
            assert "Reply" in offered
            assert "Delete for me…" in offered
            for absent in ("React…", "Edit", "Delete for everyone…"):
                assert absent not in offered
            view.menu.close()

            # Receipts: "delivered to 2 of 2", and who has it in the tooltip.
            await until(
                lambda: bubble(alice, "welcome bob")[0].receipt == "delivered to 2 of 2",
                what="delivered to both",
            )
            laid, _ = bubble(alice, "welcome bob")
            assert laid.foot.startswith("delivered to 2 of 2")
            tip = (
                view.model()
                .index(row_of(alice, "welcome bob") or 0, 0)
                .data(Qt.ItemDataRole.ToolTipRole)
            )
            assert "Delivered to " + safe_text("Bob") in tip
            assert safe_text("Carol") in tip

            # The members dialog: marks for admin, verified and you; Alice removes Carol.
            QTest.mouseClick(panel.members_button, Qt.MouseButton.LeftButton)
            members = next(d for d in alice._dialogs if isinstance(d, GroupDialog))
            assert nameless(members) == []
            await until(
                lambda: all(m.joined for m in members.group.members), what="everyone joined"
            )
            marks = {m.name: member_badges(m) for m in members.group.members}
            assert marks == {"Alice": ["You", "Admin"], "Bob": ["✔ Verified"], "Carol": []}
            spoken = [
                members.model.index(i, 0).data(Qt.ItemDataRole.AccessibleTextRole)
                for i in range(members.model.rowCount())
            ]
            assert spoken[0] == f"{safe_text('Alice')}, you, admin"
            assert spoken[1] == f"{safe_text('Bob')}, verified"
            assert members.admin_row.isVisibleTo(members)
            assert members.rename_row.isVisibleTo(members)
            members.select("Alice")
            assert not members.remove.isEnabled()
            members.select("Carol")
            assert members.remove.isEnabled()
            assert members.promote.isEnabled()
            QTest.mouseClick(members.remove, Qt.MouseButton.LeftButton)
            assert members.confirm is not None
            QTest.mouseClick(members.confirm.confirm, Qt.MouseButton.LeftButton)
            await until(
                lambda: [m.name for m in members.group.members] == ["Alice", "Bob"],
                what="Carol removed",
            )
            assert "2 members" in panel.subtitle.text()

            async def carol_out() -> bool:
                return (await carol.group((await carol.groups())[0].id)).state is (
                    GroupState.REMOVED
                )

            await eventually(carol_out, what="Carol told she was removed")

            # Bob is no admin: no rename, add or remove; he leaves, asked once.
            bob.panel.members_button.click()
            theirs = next(d for d in bob._dialogs if isinstance(d, GroupDialog))
            assert not theirs.admin_row.isVisibleTo(theirs)
            assert not theirs.rename_row.isVisibleTo(theirs)
            assert theirs.leave.isVisibleTo(theirs)
            QTest.mouseClick(theirs.leave, Qt.MouseButton.LeftButton)
            assert theirs.confirm is not None
            assert "Leave" in theirs.confirm.text.text()
            QTest.mouseClick(theirs.confirm.confirm, Qt.MouseButton.LeftButton)
            await until(lambda: bob.panel.read_only.isVisibleTo(bob), what="read-only")
            assert not bob.panel.compose_row.isVisibleTo(bob)
            assert not bob.panel.composer.isEnabled()
            assert "You left" in bob.panel.read_only.text()
            assert row_of(bob, "hello from bob") is not None  # still readable
            assert not theirs.leave.isVisibleTo(theirs)
            await until(
                lambda: [m.name for m in members.group.members] == ["Alice"],
                what="Alice sees Bob gone",
            )

    run(body(), timeout=90)


def test_decline_add_promote_rename_and_what_a_group_refuses(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with alice_bob_and_carol(tmp_path) as (alice, bob, carol, _):
            a = alice.engine
            to_bob = (await a.find_contact("Bob")).id
            to_carol = (await a.find_contact("Carol")).id
            made = await a.create_group("Book club", [to_bob])

            # Bob declines from the bar: the invitation goes, nothing reaches his list.
            await until(lambda: bob.requests.invites.rowCount() == 1, what="the invitation")
            bob.requests.invite_list.setCurrentIndex(bob.requests.invites.index(0))
            await until(lambda: bob.panel.invite_bar.isVisibleTo(bob), what="it open")
            QTest.mouseClick(bob.panel.invite_bar.decline, Qt.MouseButton.LeftButton)
            await until(lambda: bob.right.currentWidget() is bob.empty, what="closed")
            await until(lambda: not bob.requests.isVisible(), what="the invitation gone")
            assert await bob.engine.group_invites() == []
            assert "Book club" not in list_names(bob)

            # Alice's group: its menu in the list, and what its conversation refuses.
            await until(lambda: "Book club" in list_names(alice), what="the group listed")
            row = alice.contacts.row_of(made.id)
            assert row is not None
            alice.contact_list.setCurrentIndex(alice.contacts.index(row, 0))
            await until(lambda: alice.panel.group is not None, what="the group open")
            menu = alice.contact_actions.show_menu(
                alice.contacts.summary(row).contact, QPoint(0, 0), alice.groups.get(made.id)
            )
            entries = [x.text().replace("&", "") for x in menu.actions() if x.text()]
            assert entries == ["Members…", "Mute notifications", "Leave group…"]
            menu.close()
            alice.panel.send_items([Outgoing(b"hello", "notes.txt", "text/plain")])
            assert alice.panel.error.text() == NO_GROUP_FILES
            assert alice.panel.attach() is None

            # Alice adds Carol from the members dialog; Carol joins; Alice makes her an admin.
            members = alice.show_members(made.id)
            assert members is not None
            adding = members.add_members()
            await adding.loaded
            offered = [adding.picker.list.item(i).text() for i in range(adding.picker.list.count())]
            assert offered == [safe_text("Carol")]  # Bob is in already
            assert adding.picker.set_chosen(to_carol)
            QTest.mouseClick(adding.add, Qt.MouseButton.LeftButton)
            await until(
                lambda: [m.name for m in members.group.members] == ["Alice", "Bob", "Carol"],
                what="Carol added",
            )
            assert "Invited" in member_badges(members.group.members[2])
            await carol.join_group(await invited(carol, "Book club"))
            members.select("Carol")
            QTest.mouseClick(members.promote, Qt.MouseButton.LeftButton)
            await until(
                lambda: members.group.members[2].admin and members.group.members[2].joined,
                what="Carol an admin",
            )
            assert not members.promote.isEnabled()

            # Alice renames the group: her window follows, and Carol's engine has it.
            members.name.setText("Readers")
            QTest.mouseClick(members.rename, Qt.MouseButton.LeftButton)
            await until(lambda: "Readers" in list_names(alice), what="renamed in the list")
            await until(lambda: alice.panel.title.text() == safe_text("Readers"), what="title")
            assert members.title.text() == safe_text("Readers")

            async def carol_sees() -> bool:
                return [g.name for g in await carol.groups()] == ["Readers"]

            await eventually(carol_sees, what="the new name at Carol's")

    run(body(), timeout=90)


def test_the_picker_refuses_one_contact_past_its_limit(qapp) -> None:
    picker = ContactPicker(limit=2)
    said: list[str] = []
    picker.refused.connect(said.append)
    people = [Contact(i, f"Friend {i}", bytes([i]) * 64, False, 0) for i in range(1, 4)]
    picker.set_contacts(
        [(c, "") for c in people]
        + [(Contact(9, "Z", b"z" * 64, False, 0), "waiting for the handshake")]
    )
    assert picker.set_chosen(1)
    assert picker.set_chosen(2)
    assert not picker.set_chosen(3)  # one past the limit: unticked again, and said why
    assert picker.chosen() == [1, 2]
    assert said
    assert "at most 2" in said[0]
    assert f"at most {MAX_GROUP_MEMBERS} members" in said[0]
    assert not picker.set_chosen(9)  # not established yet: cannot be chosen
    assert picker.count.text() == "2 chosen · at most 2"
    # A click on a row's name ticks it or unticks it (once, not twice).
    picker.resize(300, 300)
    picker.show()
    first = picker.list.visualItemRect(picker.list.item(0)).center()
    QTest.mouseClick(picker.list.viewport(), Qt.MouseButton.LeftButton, pos=first)
    assert picker.chosen() == [2]
    QTest.mouseClick(picker.list.viewport(), Qt.MouseButton.LeftButton, pos=first)
    assert picker.chosen() == [1, 2]
    picker.close()
