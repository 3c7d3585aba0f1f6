"""`anonchat-cli card` (a one-time code), `card --address` (the long-lived one) and `address
rotate|delete`, as a person types them."""

from __future__ import annotations

from collections.abc import Callable

from app.crypto.card import Card
from tests.e2e.conftest import Profile

RELAY = "ws://127.0.0.1:9"  # nothing listens: showing and changing codes needs no relay


def test_codes_and_the_address_from_the_command_line(make_profile: Callable[..., Profile]) -> None:
    me = make_profile("Me", RELAY)
    one_time = me.run("card").data
    assert one_time["kind"] == "one-time"
    assert Card.parse(one_time["card"]).address is False
    assert me.run("card").data["card"] == one_time["card"]  # unused: the same code again

    address = me.run("card", "--address").data
    assert address["kind"] == "address"
    assert Card.parse(address["card"]).address is True
    assert me.run("card", "--address").data["card"] == address["card"]
    assert Card.parse(address["card"]).mailbox != Card.parse(one_time["card"]).mailbox

    rotated = me.run("address", "rotate").data["card"]
    assert Card.parse(rotated).mailbox != Card.parse(address["card"]).mailbox
    assert me.run("card", "--address").data["card"] == rotated

    assert me.run("address", "delete").data == {"deleted": True}
    fresh = me.run("card", "--address").data["card"]  # asked for again: a new one
    assert Card.parse(fresh).mailbox not in {
        Card.parse(c).mailbox for c in (rotated, address["card"])
    }
    assert me.run("card").data["card"] == one_time["card"]  # the one-time code is untouched
