"""Files sent and received: where a transfer stands and what a person sees of it."""

from __future__ import annotations

from app.domain.messages import FileInfo, FileRow, FileState

__all__ = [
    "DEFAULT_AUTO_DOWNLOAD_MB",
    "MAX_FILE_BYTES",
    "MAX_FILE_NAME_CHARS",
    "MAX_THUMBNAIL_BYTES",
    "FileInfo",
    "FileRow",
    "FileState",
    "safe_file_name",
    "size_words",
]

MAX_FILE_BYTES = 2 * 1024**3
MAX_THUMBNAIL_BYTES = 16 * 1024
MAX_FILE_NAME_CHARS = 255
DEFAULT_AUTO_DOWNLOAD_MB = 25


def size_words(size: int) -> str:
    """A size as people read it: "980 bytes", "12.4 KB", "3.1 MB", "1.2 GB"."""
    if size < 1000:
        return f"{size} byte" + ("s" if size != 1 else "")
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if size >= scale:
            value = size / scale
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    raise AssertionError("unreachable")


def safe_file_name(name: str) -> str:
    """A received name fit to save under: no folders, no control characters, not hidden,
    not empty, at most MAX_FILE_NAME_CHARS."""
    cleaned = "".join(
        "_" if c in '/\\:*?"<>|' or ord(c) < 32 or ord(c) == 127 else c for c in name
    ).strip(" .")
    return (cleaned or "file")[:MAX_FILE_NAME_CHARS]
