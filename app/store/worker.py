"""One database thread with an asyncio API: disk and Argon2id never block the event loop.

Every job runs on the same thread in submission order, so one connection serves all of them
and writes are naturally serialized. A job cancelled by its awaiting task still runs to its end
(a transaction is never abandoned half-way); only its result is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from .errors import StoreClosed

T = TypeVar("T")
_Job = tuple[Callable[[], Any], asyncio.AbstractEventLoop, "asyncio.Future[Any]"]


def _resolve(fut: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if fut.cancelled():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class Worker:
    """A single thread that runs submitted callables and resolves asyncio futures."""

    def __init__(self, name: str = "store") -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, loop, fut = job
            try:
                ok, value = True, fn()
            except BaseException as exc:
                ok, value = False, exc
            # A closed loop means nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, fut, ok, value)
            del job, fn, fut, value

    async def call(self, fn: Callable[[], T]) -> T:
        """Run fn on the worker thread and await its result (or exception)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        with self._lock:
            if self._closed:
                raise StoreClosed("the store is closed")
            self._jobs.put((fn, loop, fut))
        return await fut

    @property
    def on_worker_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def stop(self, timeout: float | None = None) -> None:
        """Refuse new jobs, let queued ones finish, and end the thread."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._jobs.put(None)
        if not self.on_worker_thread:
            self._thread.join(timeout)
