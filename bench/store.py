"""Benchmark of the encrypted store against plain sqlite3 with the same schema and pragmas.

Figures: per-message receive unit (advance session + store message + queue receipt, one
transaction each) vs plain sqlite3; newest-page and unread-count latency at 1,000 vs 1,000,000
messages; FTS5 search p95 at 1,000,000; unlock time with the default Argon2id parameters.
The last stdout line is one JSON object. BENCH_SCALE (default 1.0) shrinks it for a smoke run.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.crypto.passphrase import DEFAULT_PARAMS, INSECURE_FAST_PARAMS
from app.domain.messages import Direction, Status
from app.store import migrations, vault
from app.store.messages import index_for_search
from app.store.paths import ProfilePaths
from app.store.records import NewMessage, NewOutbox, OutboxKind
from app.store.repos import Repos

SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
INSERTS = int(100_000 * SCALE)
SMALL = 1_000
BIG = int(1_000_000 * SCALE)
CONTACTS = 20
CHUNK = 500
rng = random.Random(7)
VOCAB = [
    "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 9)))
    for _ in range(5000)
]


def body(n: int) -> str:
    return " ".join(rng.choice(VOCAB) for _ in range(8)) + f" {n}"


def seed_contacts(r: Repos) -> None:
    for c in range(CONTACTS):
        r.contacts.add(f"contact {c}", b"K%d" % c, 0)


def receive_loop(r: Repos, count: int, offset: int) -> float:
    t = time.perf_counter()
    for i in range(offset, offset + count):
        c = 1 + i % CONTACTS
        msg = NewMessage(
            c, Direction.INCOMING, i.to_bytes(16, "big"), i, body(i), i, i, Status.DELIVERED
        )
        receipt = NewOutbox(c, OutboxKind.RECEIPT, b"m" * 32, "ws://r", os.urandom(96), 0, i)
        r.messages.store_incoming(msg, os.urandom(400), receipt, i)
    return time.perf_counter() - t


def bulk(conn: Any, start: int, count: int, batch: int = 50_000) -> None:
    """Fill history fast: big transactions of plain inserts (triggers keep the counters), each
    followed by its search indexing batch."""
    for lo in range(start, start + count, batch):
        rows = [
            # direction alternates per round of contacts, so every contact has unread mail
            # in both databases and the unread query returns the same rows at both sizes
            (
                1 + i % CONTACTS,
                (i // CONTACTS) % 2,
                i.to_bytes(16, "big"),
                i,
                body(i),
                i,
                i,
                "delivered",
                0,
            )
            for i in range(lo, min(lo + batch, start + count))
        ]
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO messages (contact_id, direction, msg_id, sender_seq, body, sent_at, "
            "received_at, status, is_read) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.execute("COMMIT")
        index_for_search(conn)


def median_ms(fn: Any, runs: int = 100, batch: int = 20) -> float:
    """Median per-call time over runs of batch calls (sub-10 us calls need batching)."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        for _ in range(batch):
            fn()
        times.append((time.perf_counter() - t) / batch)
    return statistics.median(times) * 1000


def hot_paths(r: Repos) -> tuple[float, float]:
    page = median_ms(lambda: r.messages.page(1 + rng.randrange(CONTACTS), 50))
    unread = median_ms(r.messages.unread_counts)
    return page, unread


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="store-bench-"))
    enc = vault.create(ProfilePaths(root / "enc"), "bench", INSECURE_FAST_PARAMS)
    plain = sqlite3.connect(root / "plain.db", isolation_level=None)
    migrations.configure(plain)
    migrations.migrate(plain)
    er, pr = Repos(enc.conn), Repos(plain)
    seed_contacts(er)
    seed_contacts(pr)

    # In alternating chunks, so the disk's and the machine's moods hit both alike.
    t_plain = t_enc = 0.0
    for lo in range(0, INSERTS, CHUNK):
        n = min(CHUNK, INSERTS - lo)
        t_plain += receive_loop(pr, n, lo)
        t_enc += receive_loop(er, n, lo)
    plain.close()
    print(
        f"insert: {INSERTS} units  sqlcipher {t_enc / INSERTS * 1e6:.0f} us/unit  "
        f"sqlite3 {t_plain / INSERTS * 1e6:.0f} us/unit",
        flush=True,
    )

    small = vault.create(ProfilePaths(root / "small"), "bench", INSECURE_FAST_PARAMS)
    sr = Repos(small.conn)
    seed_contacts(sr)
    bulk(small.conn, 0, SMALL)
    small.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    t = time.perf_counter()
    bulk(enc.conn, INSERTS, BIG - INSERTS)
    print(f"built {BIG} messages in {time.perf_counter() - t:.0f} s", flush=True)
    # As after a restart: history checkpointed into the main file, WAL empty, both databases
    # opened afresh, and measured in alternation so machine noise hits both alike.
    enc.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    small.conn.close()
    enc.conn.close()
    small = vault.unlock(ProfilePaths(root / "small"), "bench")
    enc = vault.unlock(ProfilePaths(root / "enc"), "bench")
    sr, er = Repos(small.conn), Repos(enc.conn)
    rounds = [(hot_paths(sr), hot_paths(er)) for _ in range(5)]
    page_small = min(r[0][0] for r in rounds)
    unread_small = min(r[0][1] for r in rounds)
    page_big = min(r[1][0] for r in rounds)
    unread_big = min(r[1][1] for r in rounds)
    print(f"page(50): {page_small:.3f} ms at {SMALL}, {page_big:.3f} ms at {BIG}", flush=True)
    print(f"unread: {unread_small:.3f} ms at {SMALL}, {unread_big:.3f} ms at {BIG}", flush=True)

    times = []
    for _ in range(200):
        words = " ".join(rng.choice(VOCAB) for _ in range(rng.choice((1, 1, 2))))
        contact = rng.choice((None, 1 + rng.randrange(CONTACTS)))
        t = time.perf_counter()
        er.search(words, 20, contact_id=contact)
        times.append(time.perf_counter() - t)
    search_p95 = statistics.quantiles(times, n=20)[-1] * 1000
    print(
        f"search p95 at {BIG}: {search_p95:.2f} ms (median {statistics.median(times) * 1000:.2f})"
    )

    small.conn.close()
    enc.conn.close()
    tuned = ProfilePaths(root / "tuned")
    vault.create(tuned, "bench", DEFAULT_PARAMS).conn.close()
    t = time.perf_counter()
    vault.unlock(tuned, "bench").conn.close()
    unlock = time.perf_counter() - t
    print(f"unlock with default Argon2id {DEFAULT_PARAMS}: {unlock:.2f} s")
    shutil.rmtree(root)

    print(
        json.dumps(
            {
                "insert_vs_sqlite": round(t_enc / t_plain, 3),
                "insert_us_sqlcipher": round(t_enc / INSERTS * 1e6, 1),
                "insert_us_sqlite": round(t_plain / INSERTS * 1e6, 1),
                "page_growth": round(page_big / page_small, 3),
                "unread_growth": round(unread_big / unread_small, 3),
                "page_ms_1k": round(page_small, 4),
                "page_ms_1m": round(page_big, 4),
                "unread_ms_1k": round(unread_small, 4),
                "unread_ms_1m": round(unread_big, 4),
                "search_p95_ms": round(search_p95, 2),
                "unlock_s": round(unlock, 3),
                "messages": BIG,
                "inserts": INSERTS,
            }
        )
    )


if __name__ == "__main__":
    main()
