"""How people reach you: the four choices in the wizard and in Settings, the profile's own
relay (where its port is taken, the program says so and contacts follow), and the status bar's
word on the relay in use.

Sharing a relay announces it on the network, so that case runs in a child process inside a
network namespace of its own (`unshare --net`, root only), on a veth pair with an address of
its own: nothing goes out onto a real network. The other cases touch 127.0.0.1 only and never
choose a relay that is announced or searched for.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QRadioButton

from app.core.engine import Engine
from app.core.profile import RelayMode, create_profile, profile_paths
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.ui.launcher import Launcher
from app.ui.onboarding import UnlockPage, WizardPage
from app.ui.relay_choice import NONE_FOUND, SEARCHING
from app.ui.settings import TESTING, SettingsDialog
from app.ui.window import MainWindow
from tests.ui.conftest import PASSPHRASE, Relay, launch, request_row, until

ROOT = Path(__file__).resolve().parents[2]
NETNS_ADDRESS = "10.78.0.1"
# A network of our own: a veth pair, one end with an address, multicast on, and loopback up.
NETNS_SETUP = (
    "ip link add v0 type veth peer name v1 && ip link set v0 multicast on up && "
    f"ip link set v1 up && ip addr add {NETNS_ADDRESS}/24 dev v0 && ip link set lo up"
)
HOLD_A_PORT = (
    "import socket, sys, time\n"
    "s = socket.socket()\n"
    "s.bind(('127.0.0.1', 0))\n"
    "s.listen()\n"
    "print(s.getsockname()[1], flush=True)\n"
    "time.sleep(600)\n"
)


def closed_port() -> int:
    """A port nothing listens on (bound and let go)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def choose(button: QRadioButton) -> None:
    """A click on the radio button's round mark (its middle may be past its text)."""
    QTest.mouseClick(button, Qt.MouseButton.LeftButton, pos=QPoint(8, button.height() // 2))
    assert button.isChecked()


def fill_wizard(page: WizardPage, name: str) -> None:
    QTest.keyClicks(page.name, name)
    QTest.keyClicks(page.passphrase, PASSPHRASE)
    QTest.keyClicks(page.repeat, PASSPHRASE)


async def wizard(directory: Path) -> tuple[Launcher, WizardPage, asyncio.Future[None]]:
    launcher = Launcher(profile_paths(str(directory)), None, INSECURE_FAST_PARAMS)
    page = launcher.show_gate()
    assert isinstance(page, WizardPage)
    runner = asyncio.ensure_future(launcher.run())
    await asyncio.sleep(0)  # running: closing the page now ends it
    return launcher, page, runner


async def card_relay(engine: Engine) -> str:
    """The relay URL our own card carries now."""
    return (await engine.preview_card(await engine.card())).relay_url


def shown(launcher: Launcher) -> MainWindow:
    assert launcher.window is not None
    return launcher.window


# -- sharing and finding, on a network of our own -----------------------------------------


async def share_and_find(work: Path) -> None:
    from app.net.discovery import local_addresses

    assert local_addresses() == [NETNS_ADDRESS]

    # Bob looks for a relay on the network before there is one.
    bob, bob_page, bob_run = await wizard(work / "bob")
    assert bob_page.choice.local.isChecked()  # nothing goes on the network unless chosen
    choose(bob_page.choice.found)
    assert bob_page.choice.found_list.isVisible()
    assert bob_page.choice.found_state.text() == SEARCHING
    await until(lambda: bob_page.choice.found_state.text() == NONE_FOUND, what="none found")
    fill_wizard(bob_page, "Bob")
    QTest.mouseClick(bob_page.create_button, Qt.MouseButton.LeftButton)
    assert "Pick a relay from the list" in bob_page.choice.error.text()
    assert not profile_paths(str(work / "bob")).header.exists()

    # Alice shares a relay on this network: her card carries this computer's address, and
    # her relay answers there.
    alice, page, alice_run = await wizard(work / "alice")
    assert page.choice.share.isEnabled()
    assert "Wi-Fi, LAN" in page.choice.share_line.text()
    choose(page.choice.share)
    fill_wizard(page, "Alice")
    QTest.mouseClick(page.create_button, Qt.MouseButton.LeftButton)
    await asyncio.wait_for(alice.ready.wait(), 30)
    alice_window = shown(alice)
    alice_engine = alice_window.engine
    assert alice_engine.relay_mode is RelayMode.SHARE
    alice_relay = await card_relay(alice_engine)
    host = urlsplit(alice_relay).hostname
    assert host == NETNS_ADDRESS
    assert not ipaddress.ip_address(host).is_loopback
    assert urlsplit(alice_relay).port == 8765
    await alice_engine.test_relay(alice_relay)
    await until(
        lambda: alice_window.connection.text() == f"Online · your relay at {alice_relay}",
        what="Alice online on her relay",
    )
    assert alice_window.statusBar().currentMessage() == ""  # it runs where her card says

    # Bob's list finds it by itself.
    found = bob_page.choice.found_list
    await until(lambda: found.count() == 1, seconds=20, what="Alice's relay found")
    assert NETNS_ADDRESS in found.item(0).text()
    assert "1 found" in bob_page.choice.found_state.text()

    # Carol only tries AnonChat out: her relay is on 127.0.0.1, and Alice's holds port 8765,
    # so hers runs on another port, says so, and is never announced.
    carol, carol_page, carol_run = await wizard(work / "carol")
    assert carol_page.choice.local.isChecked()
    assert carol_page.choice.local_line.text() == (
        "Only other profiles on this computer can reach you."
    )
    fill_wizard(carol_page, "Carol")
    QTest.mouseClick(carol_page.create_button, Qt.MouseButton.LeftButton)
    await asyncio.wait_for(carol.ready.wait(), 30)
    carol_window = shown(carol)
    carol_engine = carol_window.engine
    assert carol_engine.relay_mode is RelayMode.LOCAL
    carol_url = urlsplit(carol_engine.relay_url)
    assert carol_url.hostname == "127.0.0.1"
    assert carol_url.port != 8765
    assert carol_window.statusBar().currentMessage() == (
        "Port 8765 is in use by another program; this profile's relay runs on port "
        f"{carol_url.port}."
    )
    assert await card_relay(carol_engine) == carol_engine.relay_url
    await until(lambda: carol_window.connection.text().startswith("Online"), what="Carol online")
    await asyncio.sleep(1.5)
    assert found.count() == 1  # a relay on 127.0.0.1 is not announced

    # One click picks Alice's relay, and Bob's request reaches her through it.
    item = found.item(0)
    QTest.mouseClick(
        found.viewport(), Qt.MouseButton.LeftButton, pos=found.visualItemRect(item).center()
    )
    assert found.currentItem() is item
    assert not bob_page.choice.error.isVisible()
    QTest.mouseClick(bob_page.create_button, Qt.MouseButton.LeftButton)
    await asyncio.wait_for(bob.ready.wait(), 30)
    bob_engine = shown(bob).engine
    assert bob_engine.relay_mode is RelayMode.URL
    assert bob_engine.relay_url.rstrip("/") == alice_relay.rstrip("/")
    await bob_engine.add_contact(await alice_engine.card())
    await until(lambda: request_row(alice_window, "Bob") is not None, what="Bob's request")

    # Carol switches to sharing in Settings: her relay now listens on the network too
    # (another port, since Alice's holds 8765), and is announced.
    dialog = carol_window.show_settings()
    assert dialog.choice.local.isChecked()
    choose(dialog.choice.share)
    assert await dialog.save()
    assert carol_engine.relay_mode is RelayMode.SHARE
    shared = urlsplit(carol_engine.relay_url)
    assert shared.hostname == NETNS_ADDRESS
    assert await card_relay(carol_engine) == carol_engine.relay_url
    assert f"port {shared.port}" in carol_window.statusBar().currentMessage()
    await carol_engine.test_relay(carol_engine.relay_url)
    await until(
        lambda: carol_window.connection.text().startswith("Online · your relay at ws://10.78"),
        what="Carol online on her shared relay",
    )
    dialog.close()
    _, dave_page, dave_run = await wizard(work / "dave")
    choose(dave_page.choice.found)
    await until(lambda: dave_page.choice.found_list.count() == 2, seconds=20, what="both found")
    dave_page.close()
    await asyncio.wait_for(dave_run, 10)

    for launcher, runner in ((alice, alice_run), (bob, bob_run), (carol, carol_run)):
        await launcher.shutdown()
        await asyncio.wait_for(runner, 10)
        shown(launcher).close()

    # This computer's address changes while Alice is away: opened again, her relay is
    # reached at the new one, her card says so, and so does the status bar.
    moved_to = "10.78.0.2"
    for change in ("del", NETNS_ADDRESS), ("add", moved_to):
        ip = await asyncio.create_subprocess_exec(
            "ip", "addr", change[0], f"{change[1]}/24", "dev", "v0"
        )
        assert await ip.wait() == 0
    assert local_addresses() == [moved_to]
    alice = await launch_again(work / "alice")
    alice_window = shown(alice)
    alice_engine = alice_window.engine
    assert alice_engine.relay_mode is RelayMode.SHARE
    assert urlsplit(alice_engine.relay_url).hostname == moved_to
    assert urlsplit(alice_engine.relay_url).port == 8765
    assert await card_relay(alice_engine) == alice_engine.relay_url
    assert alice_window.statusBar().currentMessage() == (
        f"This computer's network address changed from {NETNS_ADDRESS} to {moved_to}; "
        "contacts are told."
    )
    await alice_engine.test_relay(alice_engine.relay_url)
    await alice.shutdown()
    alice_window.close()


def in_namespace(work: Path) -> int:
    """The child's side: runs `share_and_find` on a qasync loop; 0 when it passed."""
    import qasync
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        loop.run_until_complete(asyncio.wait_for(share_and_find(work), 120))
    print("passed", flush=True)
    return 0


def test_share_a_relay_and_find_it_on_a_network_of_our_own(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a network namespace (unshare --net) needs root; CI runs as root")
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("unshare and ip (util-linux, iproute2) are needed for a network namespace")
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    script = f'{NETNS_SETUP} && exec "$0" -m tests.ui.test_relay_choice "$1"'
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", script, sys.executable, str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-6000:])
    assert done.stdout.strip().endswith("passed")


# -- the profile's own relay on loopback ----------------------------------------------------


def test_a_port_held_by_another_program_moves_the_profiles_relay(run, tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_PORT], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        port = int(holder.stdout.readline())

        async def body() -> None:
            paths = profile_paths(str(tmp_path / "me"))
            wanted = f"ws://127.0.0.1:{port}"
            opened = await create_profile(
                paths, PASSPHRASE, "Me", wanted, INSECURE_FAST_PARAMS, relay_mode=RelayMode.LOCAL
            )
            await (await Engine.open(opened)).close()
            launcher = Launcher(paths)
            page = launcher.show_gate()
            assert isinstance(page, UnlockPage)
            page.passphrase.setText(PASSPHRASE)
            QTest.keyClick(page.passphrase, Qt.Key.Key_Return)
            await asyncio.wait_for(launcher.ready.wait(), 20)
            window = shown(launcher)
            engine = window.engine
            moved = urlsplit(engine.relay_url)
            assert moved.hostname == "127.0.0.1"
            assert moved.port not in (None, port)
            assert engine.relay_mode is RelayMode.LOCAL
            assert window.statusBar().currentMessage() == (
                f"Port {port} is in use by another program; this profile's relay runs on "
                f"port {moved.port}."
            )
            assert await card_relay(engine) == engine.relay_url
            await until(
                lambda: window.connection.text() == f"Online · your relay at {engine.relay_url}",
                what="online on its own relay",
            )
            await launcher.shutdown()
            window.close()

        run(body())
    finally:
        holder.kill()
        holder.wait()


# -- switching in Settings, and the status bar ----------------------------------------------


async def saving(dialog: SettingsDialog) -> bool:
    """Save, checking that the dialog says it is testing while the engine does."""
    task = asyncio.ensure_future(dialog.save())
    await asyncio.sleep(0)
    assert dialog.relay_result.text() == TESTING
    assert dialog.relay_result.isVisibleTo(dialog)
    return await task


def test_settings_refuse_an_unreachable_relay_and_apply_a_reachable_one(
    run, tmp_path: Path
) -> None:
    async def body() -> None:
        first, second = Relay(), Relay()
        url, other = await first.start(), await second.start()
        launcher = await launch(tmp_path / "me", "Me", url)
        window = shown(launcher)
        engine = window.engine
        await until(lambda: window.connection.text().startswith("Online"), what="online")
        status = window.connection.text()
        dialog = window.show_settings()
        assert dialog.choice.custom.isChecked()
        assert dialog.choice.relay.text() == url
        assert url in dialog.in_use.text()

        nowhere = f"ws://127.0.0.1:{closed_port()}"
        dialog.tabs.setCurrentWidget(dialog.relay_page)
        dialog.choice.relay.setText(nowhere)
        dialog.name.setText("Renamed")
        assert not await saving(dialog)
        assert dialog.choice.error.isVisibleTo(dialog)
        assert "could not reach" in dialog.choice.error.text().lower()
        assert nowhere in dialog.choice.error.text()
        assert not dialog.relay_result.isVisibleTo(dialog)
        assert engine.relays == (url,)
        assert engine.relay_url == url
        assert engine.name == "Me"  # nothing of the form was saved
        assert await card_relay(engine) == url
        await asyncio.sleep(0.5)
        assert window.connection.text() == status

        # A fallback that cannot be reached is refused under its own field.
        dialog.choice.relay.setText(url)
        dialog.fallbacks.setPlainText(nowhere)
        assert not await saving(dialog)
        assert dialog.fallbacks_error.isVisibleTo(dialog)
        assert nowhere in dialog.fallbacks_error.text()
        assert engine.relays == (url,)
        dialog.fallbacks.setPlainText(f"{other}\n{other}\n{other}")
        assert not await dialog.save()
        assert "At most 2" in dialog.fallbacks_error.text()
        dialog.fallbacks.setPlainText("")

        # The reachable one is applied: the card, the engine and the status bar follow.
        dialog.choice.relay.setText(other)
        assert await saving(dialog)
        assert engine.relay_url == other
        assert engine.relays == (other,)
        assert engine.relay_mode is RelayMode.URL
        assert engine.name == "Renamed"
        assert await card_relay(engine) == other
        assert other in dialog.in_use.text()
        await until(
            lambda: window.connection.text() == f"Online · {other}", what="online on the other"
        )
        dialog.close()
        await launcher.shutdown()
        window.close()
        await first.close()
        await second.close()

    run(body())


def test_status_bar_shows_the_relay_in_use_not_one_left_behind(run, tmp_path: Path) -> None:
    async def body() -> None:
        first, second = Relay(), Relay()
        url, other = await first.start(), await second.start()
        launcher = await launch(tmp_path / "me", "Me", url)
        window = shown(launcher)
        engine = window.engine
        dialog = window.show_settings()

        # Moved to the second relay, which then goes away: unreachable, with a countdown.
        dialog.choice.relay.setText(other)
        assert await dialog.save()
        await until(lambda: window.connection.text() == f"Online · {other}", what="on the other")
        await second.close()
        await until(
            lambda: window.connection.text().startswith("Relay unreachable · retrying in"),
            what="unreachable",
        )
        assert other in window.connection.text()

        # Back to the first: the one left behind goes on failing, and is not shown.
        dialog.choice.relay.setText(url)
        assert await dialog.save()
        await until(lambda: window.connection.text() == f"Online · {url}", what="back online")
        for _ in range(20):
            await asyncio.sleep(0.1)
            assert window.connection.text() == f"Online · {url}"

        # The first relay with a fallback: while it is down, the fallback is in use.
        second = Relay()
        other = await second.start()
        dialog.fallbacks.setPlainText(other)
        assert await dialog.save()
        assert engine.relays == (url, other)
        dialog.close()
        await first.close()
        await until(
            lambda: window.connection.text() == f"Online via fallback {other}",
            seconds=20,
            what="online via the fallback",
        )
        await launcher.shutdown()
        window.close()

        # Opened again with the first relay still down: the fallback's word, no stale one.
        launcher = await launch_again(tmp_path / "me")
        window = shown(launcher)
        await until(
            lambda: window.connection.text() == f"Online via fallback {other}",
            seconds=20,
            what="online via the fallback after a restart",
        )
        await launcher.shutdown()
        window.close()
        await second.close()

    run(body())


async def launch_again(directory: Path) -> Launcher:
    launcher = Launcher(profile_paths(str(directory)))
    page = launcher.show_gate()
    assert isinstance(page, UnlockPage)
    page.passphrase.setText(PASSPHRASE)
    QTest.keyClick(page.passphrase, Qt.Key.Key_Return)
    await asyncio.wait_for(launcher.ready.wait(), 20)
    return launcher


def test_choices_say_why_they_are_not_complete(run, tmp_path: Path) -> None:
    """The URL field and the list check what they hold; the two relays this app runs need
    nothing more. (The list is never shown here: that would search the real network.)"""

    async def body() -> None:
        _, page, runner = await wizard(tmp_path / "me")
        choice = page.choice
        assert choice.chosen() == (RelayMode.LOCAL, "ws://127.0.0.1:8765")
        choose(choice.custom)
        assert choice.relay.isEnabled()
        choice.relay.setText("http://not a relay")
        fill_wizard(page, "Me")
        QTest.mouseClick(page.create_button, Qt.MouseButton.LeftButton)
        assert choice.error.isVisible()
        assert "Not a relay URL" in choice.error.text()
        assert not page.error.isVisible()
        assert not profile_paths(str(tmp_path / "me")).header.exists()
        QTest.keyClicks(choice.relay, "x")
        assert not choice.error.isVisible()  # typing clears the complaint
        if choice.address is not None:
            assert choice.share.isEnabled()
        else:
            assert not choice.share.isEnabled()
            assert "no network connection" in choice.share_line.text()
        page.close()
        await asyncio.wait_for(runner, 10)

    run(body())


if __name__ == "__main__":
    sys.exit(in_namespace(Path(sys.argv[1])))
