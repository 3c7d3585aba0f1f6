"""Running engine coroutines from Qt slots without blocking the GUI thread.

Under qasync the asyncio loop is the Qt event loop, so a slot cannot await: it hands the
coroutine to `spawn`, which keeps a reference until the task ends and logs a failure by its
type only (an exception's text may carry a contact's name or a message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

_running: set[asyncio.Future[Any]] = set()


def spawn(coro: Coroutine[Any, Any, T], what: str = "a background task") -> asyncio.Future[T]:
    """Run `coro` on the loop; failures the caller did not handle are logged, not raised."""
    task = asyncio.ensure_future(coro)
    _running.add(task)

    def finished(t: asyncio.Future[T]) -> None:
        _running.discard(t)
        if not t.cancelled() and t.exception() is not None:
            exc = t.exception()
            log.error("%s failed: %s", what, type(exc).__name__)

    task.add_done_callback(finished)
    return task


async def off_thread(fn: Callable[..., T], *args: Any) -> T:
    """Run a blocking function (image decoding) on the default executor."""
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def is_listening(host: str, port: int, wait: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), wait)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
