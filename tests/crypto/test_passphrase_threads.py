"""Argon2id derivations started at once on several threads all finish: the library's
several-lane derivations never finish when two run at the same time in one process, so the
app runs them one at a time (a scheduled backup and a passphrase change can meet)."""

from __future__ import annotations

import threading

from app.crypto.backupstream import stretch
from app.crypto.passphrase import KdfParams, derive_key, new_slot

PARAMS = KdfParams(memory_kib=8 * 1024, iterations=1, lanes=4)


def test_derivations_on_several_threads_at_once_all_finish() -> None:
    results: dict[int, bytes] = {}
    start = threading.Barrier(4)

    def work(i: int) -> None:
        start.wait()
        if i % 2:
            results[i] = derive_key(f"passphrase {i}", new_slot(PARAMS))
        else:
            results[i] = stretch(f"passphrase {i}", PARAMS, bytes(16))

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert [t.is_alive() for t in threads] == [False] * 4
    assert sorted(results) == [0, 1, 2, 3]
    assert len(set(results.values())) == 4
