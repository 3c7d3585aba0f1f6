"""Transactions: one BEGIN IMMEDIATE per unit of work, savepoints when units nest."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_names = itertools.count()


@contextmanager
def atomic(conn: Any) -> Iterator[None]:
    """All statements inside commit together or not at all.

    Outermost use takes the write lock up front (BEGIN IMMEDIATE), so a unit never fails
    half-way on lock upgrade; nested use is a savepoint inside the caller's transaction.
    """
    if conn.in_transaction:
        name = f"sp{next(_names)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
