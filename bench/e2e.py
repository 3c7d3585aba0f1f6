"""End-to-end benchmark: two engines on one loopback relay against the sum of their floors.

A burst of 5,000 messages of 100 bytes goes from Alice to Bob: encrypted, stored, sent,
forwarded, decrypted, stored, receipted and the receipt applied, until every message shows
"delivered" on Alice's side. The floors, measured in the same run and the same process:
- relay: a bare websockets forwarder carrying the same frames (message and receipt);
- crypto: the ratchet's encrypt and decrypt of the message and of its receipt;
- store: the three transactions a message costs (outgoing, incoming with receipt, receipt
  applied) through the same SQLCipher store.
The last stdout line is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core import payload as pl  # noqa: E402
from app.core.engine import Engine  # noqa: E402
from app.core.events import (  # noqa: E402
    ContactChanged,
    Event,
    MessageStatusChanged,
    RequestAdded,
)
from app.core.profile import create_profile  # noqa: E402
from app.crypto.card import Card  # noqa: E402
from app.crypto.handshake import Invitation, initiate  # noqa: E402
from app.crypto.identity import Identity  # noqa: E402
from app.crypto.passphrase import INSECURE_FAST_PARAMS  # noqa: E402
from app.domain.messages import Direction, Status  # noqa: E402
from app.store.paths import ProfilePaths  # noqa: E402
from app.store.records import NewMessage, NewOutbox, OutboxKind  # noqa: E402
from app.store.store import Store  # noqa: E402
from relay.server import RelayConfig, serve_relay  # noqa: E402
from relay.state import RelayLimits  # noqa: E402

COUNT = 5000
BODY = "x" * 100


async def engines(tmp: Path, url: str) -> tuple[Engine, Engine, int]:
    a = await Engine.open(
        await create_profile(ProfilePaths(tmp / "a"), "pw", "Alice", url, INSECURE_FAST_PARAMS)
    )
    b = await Engine.open(
        await create_profile(ProfilePaths(tmp / "b"), "pw", "Bob", url, INSECURE_FAST_PARAMS)
    )
    await a.start()
    await b.start()
    ready, asked = asyncio.Event(), asyncio.Event()
    a.subscribe(lambda e: ready.set() if isinstance(e, ContactChanged) else None)
    b.subscribe(lambda e: asked.set() if isinstance(e, RequestAdded) else None)
    contact = await a.add_contact(await b.card())
    await asyncio.wait_for(asked.wait(), 20)
    (request,) = await b.requests()
    await b.accept_request(request.request.id)  # Alice is a message request until Bob accepts
    await asyncio.wait_for(ready.wait(), 20)
    return a, b, contact.id


async def end_to_end(tmp: Path) -> float:
    # The relay's per-connection rate limit (100 frames/s by default) would be the figure
    # otherwise; lifted here so the engine's own cost is what is measured.
    limits = RelayLimits(send_rate=1_000_000.0, send_burst=1_000_000)
    handle = await serve_relay(RelayConfig(host="127.0.0.1", port=0, limits=limits))
    a, b, cid = await engines(tmp, handle.url.rstrip("/"))
    delivered: set[int] = set()
    done = asyncio.Event()

    def on_event(event: Event) -> None:
        if isinstance(event, MessageStatusChanged) and event.status is Status.DELIVERED:
            delivered.add(event.message_row)
            if len(delivered) >= COUNT:
                done.set()

    a.subscribe(on_event)
    start = time.perf_counter()
    for _ in range(COUNT):
        await a.send(cid, BODY)
    await asyncio.wait_for(done.wait(), 600)
    elapsed = time.perf_counter() - start
    stored = len(await b.messages(1, COUNT + 10))
    assert stored == COUNT, stored
    await a.close()
    await b.close()
    await handle.close()
    return elapsed / COUNT


async def relay_floor(frames: list[bytes]) -> float:
    """Per frame through a bare forwarder: no envelope, no routing, no replies."""
    sink: dict[str, ServerConnection] = {}
    joined = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        if ws.request is not None and ws.request.path == "/r":
            sink["r"] = ws
            joined.set()
            await ws.wait_closed()
            return
        async for message in ws:
            await sink["r"].send(message)

    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with (
            connect(f"ws://127.0.0.1:{port}/r", compression=None) as rx,
            connect(f"ws://127.0.0.1:{port}/s", compression=None) as tx,
        ):
            await joined.wait()

            async def receive() -> None:
                for _ in frames:
                    await rx.recv()

            start = time.perf_counter()
            receiver = asyncio.create_task(receive())
            for frame in frames:
                await tx.send(frame)
            await receiver
            return (time.perf_counter() - start) / len(frames)


def crypto_floor() -> tuple[float, list[bytes]]:
    """Per message: encrypt and decrypt the message, then its receipt, on a live session."""
    alice, bob = Identity.generate(), Identity.generate()
    invitation = Invitation.generate()
    card = Card(bob.public, invitation.prekey_public, "ws://127.0.0.1:1", invitation.mailbox.id)
    sa = initiate(alice, card, name="Alice", reply_mailbox=bytes(32))
    sa, first = sa.encrypt(b"hello")
    sb = invitation.accept(bob, first).session
    sb, reply = sb.encrypt(b"welcome")
    sa, _ = sa.decrypt(reply)
    frames: list[bytes] = []
    start = time.perf_counter()
    for seq in range(COUNT):
        sa, frame = sa.encrypt(pl.encode(pl.Chat(seq, 0, BODY)))
        sb, _ = sb.decrypt(frame)
        sb, receipt = sb.encrypt(pl.encode(pl.Receipt(False, (frame[:16],))))
        sa, _ = sa.decrypt(receipt)
        frames += (frame, receipt)
    return (time.perf_counter() - start) / COUNT, frames


async def store_floor(tmp: Path, frames: list[bytes]) -> float:
    """Per message: the sender's, the receiver's and the receipt's transactions."""
    store = await Store.create(ProfilePaths(tmp / "s"), "pw", INSECURE_FAST_PARAMS)
    cid = (await store.run(lambda r: r.contacts.add("Bob", bytes(64), 0))).id
    state = bytes(1200)
    start = time.perf_counter()
    for seq in range(COUNT):
        mid = seq.to_bytes(16, "big")
        box = NewOutbox(cid, OutboxKind.MESSAGE, bytes(32), "ws://x", frames[2 * seq], 0, 0)
        out = NewMessage(cid, Direction.OUTGOING, mid, seq, BODY, 0, None, Status.QUEUED, True)
        inc = NewMessage(cid, Direction.INCOMING, mid, seq, BODY, 0, 0, Status.DELIVERED)
        rcpt = NewOutbox(cid, OutboxKind.RECEIPT, bytes(32), "ws://x", frames[2 * seq + 1], 0, 0)
        await store.run(lambda r, m=out, b=box: r.messages.store_outgoing(m, state, b, 0))
        await store.run(lambda r, m=inc, b=rcpt: r.messages.store_incoming(m, state, b, 0))
        await store.run(lambda r, i=mid: r.messages.acknowledge(cid, [i], Status.DELIVERED))
    elapsed = time.perf_counter() - start
    await store.close()
    return elapsed / COUNT


async def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="anonchat-bench-") as tmp_name:
        tmp = Path(tmp_name)
        crypto, frames = crypto_floor()
        relay = await relay_floor(frames)
        store = await store_floor(tmp, frames)
        e2e = await end_to_end(tmp)
    floor_sum = crypto + 2 * relay + store
    return {
        "messages": COUNT,
        "msgs_per_s": round(1 / e2e, 1),
        "e2e_us_per_msg": round(e2e * 1e6, 1),
        "floor_crypto_us": round(crypto * 1e6, 1),
        "floor_relay_us": round(2 * relay * 1e6, 1),
        "floor_store_us": round(store * 1e6, 1),
        "floor_sum_us": round(floor_sum * 1e6, 1),
        "cost_vs_floor_sum": round(e2e / floor_sum, 2),
    }


if __name__ == "__main__":
    result = asyncio.run(main())
    for key, value in result.items():
        print(f"{key:>18}: {value}")
    print(json.dumps(result))
