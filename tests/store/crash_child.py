"""Child process for the crash tests: writes (or re-keys) until it is SIGKILLed.

`write DIR PASS START`: one receive unit per message, printing `C <n>` after each commit.
`rekey DIR OLD NEW [STEP]`: change the passphrase, printing each step; with STEP, SIGKILL
itself right after that step.
`hold DIR PASS`: store known secrets, print `READY`, then wait to be killed with files open.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.domain.messages import Direction, Status
from app.store import vault
from app.store.paths import ProfilePaths
from app.store.records import NewMessage, NewOutbox, OutboxKind
from app.store.repos import Repos


def write(directory: str, passphrase: str, start: int) -> None:
    from pathlib import Path

    opened = vault.unlock(ProfilePaths(Path(directory)), passphrase)
    r = Repos(opened.conn)
    n = start
    while True:
        msg = NewMessage(
            1,
            Direction.INCOMING,
            b"m%d" % n,
            n,
            f"body {n} " + "x" * (n % 700),
            n,
            n,
            Status.DELIVERED,
        )
        receipt = NewOutbox(1, OutboxKind.RECEIPT, b"mbx", "ws://r", b"r%d" % n, 0, n)
        r.messages.store_incoming(msg, b"s%d" % n, receipt, n)
        print(f"C {n}", flush=True)
        n += 1


def rekey(directory: str, old: str, new: str, kill_at: str | None) -> None:
    from pathlib import Path

    p = ProfilePaths(Path(directory))
    opened = vault.unlock(p, old)

    def step(name: str) -> None:
        print(name, flush=True)
        if name == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    print("start", flush=True)
    vault.change_passphrase(
        p, opened.conn, opened.key, old, new, INSECURE_FAST_PARAMS, on_step=step
    )
    print("done", flush=True)


def hold(directory: str, passphrase: str) -> None:
    from pathlib import Path

    from app.store.records import MailboxPurpose, OurMailbox

    p = ProfilePaths(Path(directory))
    opened = vault.create(p, passphrase, INSECURE_FAST_PARAMS)
    r = Repos(opened.conn)
    r.profile.create(b"IDENTITYSECRET-0123456789", "NAMESECRET", 1)
    c = r.contacts.add("CONTACTSECRET", b"PUBKEYSECRET-abcdef", 1).id
    r.mailboxes.add_ours(
        OurMailbox(b"MBXIDSECRET", b"MBXPRIVSECRET", "ws://r", MailboxPurpose.CONTACT, c, 1)
    )
    for n in range(200):
        body = f"BODYSECRET{n:04d} the quick brown fox"
        r.messages.store_incoming(
            NewMessage(c, Direction.INCOMING, b"MSGID%d" % n, n, body, n, n, Status.DELIVERED),
            b"SESSIONSECRET-%d" % n,
            NewOutbox(c, OutboxKind.RECEIPT, b"MBXIDSECRET", "ws://r", b"CIPHERSECRET", 0, n),
            n,
        )
    r.settings.set("SETTINGSECRET", "VALUESECRET")
    r.messages.mark_read(c, 50, 100)
    print("READY", flush=True)
    time.sleep(60)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    if mode == "write":
        write(args[0], args[1], int(args[2]))
    elif mode == "rekey":
        rekey(args[0], args[1], args[2], args[3] if len(args) > 3 else None)
    else:
        hold(args[0], args[1])
