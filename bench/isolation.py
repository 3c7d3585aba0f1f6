"""Isolation benchmark: what a connection per contact costs against one shared connection.

A profile with 200 contacts (their rows and mailboxes written directly, as after 200
handshakes) starts its engine against a real relay process on 127.0.0.1, once with
`per-contact` and once with `shared`, each in a fresh client process and on a fresh relay.
Figures: the client's resident memory once everything is subscribed, the time from start()
until the relay holds every mailbox (read from its /metrics), and the relay's resident memory
growth. Five rounds, the two settings taking turns (the other first every other round);
medians. The last stdout line is one JSON object; the ratios are per-contact over shared:
`isolated_rss_ratio` (aim at most 1.5) and `isolated_connect_ratio` (aim at most 3).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.engine import Engine
from app.core.profile import create_profile, profile_paths
from app.crypto.mailbox import MailboxKey
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.domain.contacts import ContactState
from app.store.records import MailboxPurpose, OurMailbox, TheirMailbox
from app.store.repos import Repos

CONTACTS = 200
ROUNDS = 5
MODES = ("per-contact", "shared")


def rss_kib(pid: int | str = "self") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mailboxes_at(port: int) -> int:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("anonchat_relay_mailboxes "):
            return int(line.split()[1])
    return 0


async def child(mode: str, port: int, directory: str) -> dict[str, float]:
    url = f"ws://127.0.0.1:{port}"
    opened = await create_profile(
        profile_paths(directory), "bench passphrase", "Me", url, INSECURE_FAST_PARAMS
    )
    boxes = [MailboxKey.generate() for _ in range(CONTACTS)]

    def unit(r: Repos) -> None:
        for i, box in enumerate(boxes):
            cid = r.contacts.add(f"C{i}", os.urandom(64), 1, state=ContactState.CONTACT).id
            r.mailboxes.add_ours(
                OurMailbox(box.id, box.to_bytes(), url, MailboxPurpose.CONTACT, cid, 1)
            )
            r.mailboxes.add_theirs(TheirMailbox(os.urandom(32), url, cid, 1))

    await opened.store.run(unit)
    engine = await Engine.open(opened)
    await engine.set_isolation(mode)
    loop = asyncio.get_running_loop()
    began = time.perf_counter()
    await engine.start()
    while await loop.run_in_executor(None, mailboxes_at, port) < CONTACTS + 1:
        if time.perf_counter() - began > 120:
            raise RuntimeError("not everything was subscribed in 120 s")
        await asyncio.sleep(0.01)
    connect_s = time.perf_counter() - began
    await asyncio.sleep(0.5)  # settle: presence answers, buffers
    rss = rss_kib()
    await engine.close()
    return {"connect_s": connect_s, "rss_kib": rss}


def one_run(mode: str) -> dict[str, float]:
    port = free_port()
    relay = subprocess.Popen(
        [sys.executable, "-m", "relay.server", "--host", "127.0.0.1", "--port", str(port)],
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                mailboxes_at(port)
                break
            except OSError:
                time.sleep(0.05)
        relay_before = rss_kib(relay.pid)
        with tempfile.TemporaryDirectory() as tmp:
            out = subprocess.run(
                [sys.executable, __file__, "--child", mode, str(port), str(Path(tmp) / "p")],
                capture_output=True,
                text=True,
                check=True,
                timeout=300,
            )
        figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
        figures["relay_growth_kib"] = rss_kib(relay.pid) - relay_before
        return figures
    finally:
        relay.terminate()
        relay.wait(10)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--child", nargs=3, metavar=("MODE", "PORT", "DIR"))
    p.add_argument("--rounds", type=int, default=ROUNDS)
    args = p.parse_args()
    if args.child:
        mode, port, directory = args.child
        print(json.dumps(asyncio.run(child(mode, int(port), directory))))
        return
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    for i in range(args.rounds):
        for mode in MODES if i % 2 == 0 else reversed(MODES):
            figures = one_run(mode)
            runs[mode].append(figures)
            print(f"round {i + 1} {mode}: {figures}", flush=True)

    def med(mode: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[mode])

    result = {
        "contacts": CONTACTS,
        "rounds": args.rounds,
        "per_contact_rss_kib": med("per-contact", "rss_kib"),
        "shared_rss_kib": med("shared", "rss_kib"),
        "per_contact_connect_s": round(med("per-contact", "connect_s"), 3),
        "shared_connect_s": round(med("shared", "connect_s"), 3),
        "per_contact_relay_growth_kib": med("per-contact", "relay_growth_kib"),
        "shared_relay_growth_kib": med("shared", "relay_growth_kib"),
    }
    result["isolated_rss_ratio"] = round(
        result["per_contact_rss_kib"] / result["shared_rss_kib"], 3
    )
    result["isolated_connect_ratio"] = round(
        result["per_contact_connect_s"] / result["shared_connect_s"], 3
    )
    result["isolated_relay_memory_ratio"] = round(
        max(result["per_contact_relay_growth_kib"], 1) / max(result["shared_relay_growth_kib"], 1),
        3,
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
