"""Keep the installed Qt bindings' reference-count slip from killing the process.

shiboken6 6.12.0 drops one reference to `None` every time a wrapped C++ function returning
nothing (or an object that maps to None) is called from Python: `label.setText(...)`,
`event.ignore()`, `super().keyPressEvent(e)`. `None` starts with some thousands of references,
so after enough calls, often during garbage collection at interpreter exit but just as well
mid-session, CPython frees the `None` singleton and aborts ("none_dealloc", exit 134).

Python 3.12 made None, True and False immortal for its own reasons; on 3.11 we do the same
by hand, once, before Qt starts: their counts get a margin no session can use up (one slip
per call, 2**40 calls). Nothing is ever freed that should be, and nothing else changes.
`slips_per_void_call()` measures whether the bindings still have the bug.
"""

from __future__ import annotations

import ctypes
import sys

MARGIN = 1 << 40
_pinned = False


def needed() -> bool:
    """CPython before 3.12 (later versions have immortal singletons), release build layout."""
    return (
        sys.implementation.name == "cpython"
        and sys.version_info < (3, 12)
        and not hasattr(sys, "getobjects")  # a Py_TRACE_REFS build puts links before the count
    )


def pin_singletons() -> bool:
    """Give None, True and False a reference margin; True when it was applied (once)."""
    global _pinned
    if _pinned or not needed():
        return False
    for obj in (None, True, False):
        ctypes.c_ssize_t.from_address(id(obj)).value += MARGIN
    _pinned = True
    return True


def slips_per_void_call(calls: int = 1000) -> float:
    """References to None lost per call of a void Qt method (0.0 on sound bindings)."""
    from PySide6.QtCore import QObject

    probe = QObject()
    before = sys.getrefcount(None)
    for _ in range(calls):
        probe.setObjectName("probe")
    return (before - sys.getrefcount(None)) / calls
