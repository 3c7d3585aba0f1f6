"""What the local API costs: 1,000 sends through the profile's socket (JSON-RPC, the CLI's
`send` with `wait` 0) against the same 1,000 straight on the engine, in one process and one
run, alternating rounds of 100 so all see the same machine.

"The same send straight on the engine" is the `send` command itself called in this process
(what `anonchat-cli send` runs when no holder is open: the contact looked up by name or id,
the message sent, its JSON made): `api_overhead_ratio` is the socket's cost over that. The
bare `Engine.send(contact_id, text)`, which skips the lookup and the JSON, is reported too
(`api_vs_engine_send_ratio`).

Two engines on a relay in this process become contacts; then Bob's profile is opened again
without connecting, so each send is the same work both ways (encrypt, store, queue) and the
outbox's relay traffic, which a socket's round trips would interleave differently, stays out
of both. Bob's engine serves the API (`app.cli.api_handler`, as `anonchat-cli daemon` and
the app do). The figure is the median of the per-round ratios of wall time.

Last line: {"api_overhead_ratio", "api_vs_engine_send_ratio", "api_send_ms",
"command_send_ms", "engine_send_ms"}
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run alone: the project first

from app.cli import api_handler
from app.core.engine import Engine
from app.core.profile import create_profile, open_profile, profile_paths
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.net.rpc import ApiClient, ApiServer, Call, socket_path
from relay.server import RelayConfig, serve_relay

SENDS = 1000
ROUND = 100
PASS = "bench passphrase"


async def engine_for(directory: Path, name: str, url: str) -> Engine:
    paths = profile_paths(str(directory))
    opened = await create_profile(paths, PASS, name, url, INSECURE_FAST_PARAMS)
    engine = await Engine.open(opened)
    await engine.start()
    return engine


async def until(check: object, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise RuntimeError("timed out setting up")
        await asyncio.sleep(0.05)


async def main() -> dict[str, float]:
    relay = await serve_relay(RelayConfig(host="127.0.0.1", port=0))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        alice = await engine_for(work / "alice", "Alice", relay.url.rstrip("/"))
        bob = await engine_for(work / "bob", "Bob", relay.url.rstrip("/"))
        await alice.add_contact(await bob.card())

        async def requested() -> bool:
            return bool(await bob.requests())

        await until(requested)
        (request,) = await bob.requests()
        to_alice = await bob.accept_request(request.request.id)

        async def established() -> bool:
            return any(s.established for s in await alice.summaries())

        await until(established)
        await bob.close()
        bob = await Engine.open(await open_profile(profile_paths(str(work / "bob")), PASS))
        server = ApiServer(socket_path(work / "bob"), api_handler(bob))
        await server.start()
        client = await ApiClient.connect(socket_path(work / "bob"))
        assert client is not None
        try:
            handle = api_handler(bob)
            in_process = Call(lambda method, params: None, asyncio.Event())
            api_s: list[float] = []
            command_s: list[float] = []
            engine_s: list[float] = []
            for r in range(SENDS // ROUND):
                started = time.perf_counter()
                for i in range(ROUND):
                    await bob.send(to_alice.id, f"engine {r} {i}")
                engine_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                for i in range(ROUND):
                    params = {"contact": str(to_alice.id), "text": f"cmd {r} {i}", "wait": 0}
                    await handle("send", params, in_process)
                command_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                for i in range(ROUND):
                    params = {"contact": str(to_alice.id), "text": f"api {r} {i}", "wait": 0}
                    await client.call("send", params)
                api_s.append(time.perf_counter() - started)

            def median_ratio(over: list[float]) -> float:
                return round(statistics.median(a / b for a, b in zip(api_s, over, strict=True)), 3)

            figures = {
                "api_overhead_ratio": median_ratio(command_s),
                "api_vs_engine_send_ratio": median_ratio(engine_s),
                "api_send_ms": round(sum(api_s) / SENDS * 1000, 3),
                "command_send_ms": round(sum(command_s) / SENDS * 1000, 3),
                "engine_send_ms": round(sum(engine_s) / SENDS * 1000, 3),
            }
        finally:
            await client.close()
            await server.close()
            await alice.close()
            await bob.close()
            await relay.close()
    return figures


if __name__ == "__main__":
    result = asyncio.run(main())
    print(
        f"{SENDS} sends: through the API {result['api_send_ms']} ms each; the same send "
        f"command in this process {result['command_send_ms']} ms (baseline, same run): median "
        f"ratio {result['api_overhead_ratio']} (at most 1.2 asked); bare Engine.send "
        f"{result['engine_send_ms']} ms: ratio {result['api_vs_engine_send_ratio']}"
    )
    print(json.dumps(result))
