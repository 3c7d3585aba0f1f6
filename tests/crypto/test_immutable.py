"""Every record app/crypto hands out is immutable: parsed cards, identities and frames can be
shared and cached without anyone changing them underneath (a `Session` is immutable for the
same reason; docs/crypto.md, "Transactional decrypt")."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
from collections.abc import Callable

import pytest

import app.crypto
from app.crypto.backupstream import Header
from app.crypto.card import Card
from app.crypto.duress import random_field
from app.crypto.filecrypt import ChunkFrame, FileKeys
from app.crypto.handshake import Accepted, PeerInfo
from app.crypto.header import InitFrame
from app.crypto.identity import PublicIdentity
from app.crypto.passphrase import (
    INSECURE_FAST_PARAMS,
    DuressField,
    KdfParams,
    KeyHeader,
    KeySlot,
)

from .conftest import make_pair


def _identity() -> PublicIdentity:
    return PublicIdentity(bytes(32), bytes(range(32)))


def _accepted() -> Accepted:
    pair = make_pair(reply=False)
    peer = PeerInfo(pair.alice.public, "Alice", bytes(32))
    return Accepted(pair.invitation, pair.b, peer, b"hello", b"\x01" * 32)


# One way to build each record; the test below checks the list is complete.
RECORDS: dict[type, Callable[[], object]] = {
    PublicIdentity: _identity,
    Card: lambda: Card(_identity(), bytes(32), "ws://relay:1", bytes(32), "Bob"),
    InitFrame: lambda: InitFrame(bytes(32), b"sealed", b"message"),
    PeerInfo: lambda: PeerInfo(_identity(), "Alice", bytes(32)),
    Accepted: _accepted,
    KdfParams: lambda: INSECURE_FAST_PARAMS,
    KeySlot: lambda: KeySlot(INSECURE_FAST_PARAMS, bytes(16)),
    KeyHeader: lambda: KeyHeader((KeySlot(INSECURE_FAST_PARAMS, bytes(16)),)),
    DuressField: lambda: random_field(INSECURE_FAST_PARAMS),
    FileKeys: lambda: FileKeys.derive(bytes(32), bytes(16), 100),
    ChunkFrame: lambda: ChunkFrame(bytes(16), 0, b"sealed"),
    Header: lambda: Header(INSECURE_FAST_PARAMS, bytes(16), 64, bytes(7), bytes(16)),
}


def _crypto_dataclasses() -> set[type]:
    found: set[type] = set()
    for module_info in pkgutil.iter_modules(app.crypto.__path__):
        module = importlib.import_module(f"app.crypto.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and dataclasses.is_dataclass(cls):
                found.add(cls)
    return found


def test_every_dataclass_in_app_crypto_is_listed_here() -> None:
    assert _crypto_dataclasses() == set(RECORDS)


@pytest.mark.parametrize("cls", list(RECORDS), ids=lambda cls: cls.__name__)
def test_no_field_can_be_assigned(cls: type) -> None:
    record = RECORDS[cls]()
    assert type(record) is cls
    for field in dataclasses.fields(record):  # type: ignore[arg-type]
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, field.name, getattr(record, field.name))
