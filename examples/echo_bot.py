"""An echo bot on AnonChat's local API: answers every message with the same text.

Run a holder for the bot's profile first (`anonchat-cli --profile bot daemon`, or the app),
then `python examples/echo_bot.py --profile bot`. It listens for events and, for each message
that comes in, sends "echo: <text>" back to its sender. Stop it with Ctrl+C. docs/api.md
describes every method and notification.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import Any

from app.core.profile import profile_paths
from app.net.rpc import ApiClient, socket_path


async def main(profile: str) -> int:
    client = await ApiClient.connect(socket_path(profile_paths(profile).directory))
    if client is None:
        print(f"nothing holds profile {profile!r} open: start `anonchat-cli daemon` first")
        return 1
    replies: set[asyncio.Task[Any]] = set()

    def heard(method: str, event: dict[str, Any]) -> None:
        if method == "event" and event.get("event") == "message" and event["direction"] == "in":
            params = {"contact": str(event["contact"]), "text": f"echo: {event['body']}"}
            task = asyncio.ensure_future(client.call("send", {**params, "wait": 0}))
            replies.add(task)
            task.add_done_callback(replies.discard)

    listening = asyncio.ensure_future(client.call("listen", {}, heard))
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    waiting = asyncio.ensure_future(stop.wait())
    await asyncio.wait({listening, waiting}, return_when=asyncio.FIRST_COMPLETED)
    for task in (listening, waiting, *replies):
        task.cancel()
    await client.close()
    return 0


if __name__ == "__main__":
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--profile", default="default", help="profile name or directory")
    raise SystemExit(asyncio.run(main(options.parse_args().profile)))
