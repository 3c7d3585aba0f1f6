"""What the local API costs: 1,000 sends through the profile's socket (JSON-RPC, the CLI's
`send` with `wait` 0) against the same 1,000 straight on the engine, in one process and one
run, alternating rounds of 100 so both see the same machine.

Two engines on a relay in this process, contacts of each other; Bob's engine serves the API
(`app.cli.api_handler`, as `anonchat-cli daemon` and the app do). The figure is the median of
the per-round ratios of wall time.

Last line: {"api_overhead_ratio": ..., "api_send_ms": ..., "engine_send_ms": ...}
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from app.api.rpc import ApiClient, ApiServer, socket_path
from app.cli import api_handler
from app.core.engine import Engine
from app.core.profile import create_profile, profile_paths
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from relay.server import RelayConfig, serve_relay

SENDS = 1000
ROUND = 100


async def engine_for(directory: Path, name: str, url: str) -> Engine:
    paths = profile_paths(str(directory))
    opened = await create_profile(paths, "bench passphrase", name, url, INSECURE_FAST_PARAMS)
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
        server = ApiServer(socket_path(work / "bob"), api_handler(bob))
        await server.start()
        client = await ApiClient.connect(socket_path(work / "bob"))
        assert client is not None
        try:
            await alice.add_contact(await bob.card())

            async def requested() -> bool:
                return bool(await bob.requests())

            await until(requested)
            (request,) = await bob.requests()
            to_alice = await bob.accept_request(request.request.id)

            async def established() -> bool:
                return any(s.established for s in await alice.summaries())

            await until(established)
            api_s: list[float] = []
            engine_s: list[float] = []
            for r in range(SENDS // ROUND):
                started = time.perf_counter()
                for i in range(ROUND):
                    await bob.send(to_alice.id, f"engine {r} {i}")
                engine_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                for i in range(ROUND):
                    params = {"contact": str(to_alice.id), "text": f"api {r} {i}", "wait": 0}
                    await client.call("send", params)
                api_s.append(time.perf_counter() - started)
            ratios = [a / e for a, e in zip(api_s, engine_s, strict=True)]
            figures = {
                "api_overhead_ratio": round(statistics.median(ratios), 3),
                "api_send_ms": round(sum(api_s) / SENDS * 1000, 3),
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
        f"{SENDS} sends: through the API {result['api_send_ms']} ms each, straight on the "
        f"engine {result['engine_send_ms']} ms each (baseline, same run); median ratio "
        f"{result['api_overhead_ratio']} (at most 1.2 asked)"
    )
    print(json.dumps(result))
