"""The file or picture part of a bubble: what it says about the transfer, where its parts go,
and how it is drawn (the delegate places it above the caption).

A picture shows its thumbnail at once and the whole picture once it is here; any other file
an icon, its name and size. While a file is not complete a line under it says where it
stands ("Waiting for Bob to come online", progress with speed and time left, "Failed: …")
with the one action that applies as a link (Download, Cancel, Retry).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from PySide6.QtCore import QPoint, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QImage, QPainter, QPainterPath

from app.domain.files import FileInfo, FileState, size_words
from app.domain.messages import Direction
from app.ui.pictures import PICTURE_SIDE, fitted
from app.ui.text import rebalance, safe_text

BAR_H = 6
GAP = 4
OPEN, SAVE, DOWNLOAD, CANCEL, RETRY = "open", "save", "download", "cancel", "retry"
LINKS = {DOWNLOAD: "Download", CANCEL: "Cancel", RETRY: "Retry"}
MOVING = (FileState.QUEUED, FileState.TRANSFERRING)


def done_bytes(info: FileInfo) -> int:
    """How much of the file is across: what the receiver holds (ours: what it said it holds,
    or what went out, whichever is further)."""
    done = info.received_bytes
    if info.direction is Direction.OUTGOING:
        done = max(done, info.sent_bytes)
    return max(0, min(done, info.size))


def fraction(info: FileInfo) -> float:
    if info.state is FileState.COMPLETE or info.size <= 0:
        return 1.0
    return done_bytes(info) / info.size


def speed_words(bytes_per_s: float) -> str:
    return f"{size_words(int(bytes_per_s))}/s"


def eta_words(seconds: float) -> str:
    """Time left as people say it: "8 s left", "3 min left", "2 h left"."""
    s = max(1, round(seconds))
    if s < 60:
        return f"{s} s left"
    if s < 3600:
        return f"{round(s / 60)} min left"
    return f"{s // 3600} h {s % 3600 // 60} min left" if s < 86_400 else "more than a day left"


def state_words(info: FileInfo, name: str, online: bool, rate: float = 0.0) -> str:
    """Where a transfer stands, in the words the bubble shows (`name`: the contact's)."""
    state, incoming = info.state, info.direction is Direction.INCOMING
    if state is FileState.TRANSFERRING:
        text = f"{size_words(done_bytes(info))} of {size_words(info.size)}"
        if rate > 0:
            left = (info.size - done_bytes(info)) / rate
            text += f" · {speed_words(rate)} · {eta_words(left)}"
        return text
    if state is FileState.QUEUED:
        if not online:
            return f"Waiting for {name} to come online"
        return "Starting…" if incoming else f"Waiting for {name} to download it"
    if state is FileState.OFFERED:
        return f"{size_words(info.size)}, not downloaded"
    if state is FileState.FAILED:
        return "Failed" + (f": {info.error}" if info.error else "")
    if state is FileState.CANCELLED:
        return "Cancelled"
    return "Sent" if not incoming else "Downloaded"


def link_for(info: FileInfo) -> str | None:
    """The action the state line offers: Download an offered file, Cancel one moving, Retry
    one that failed or was cancelled."""
    if info.state is FileState.OFFERED:
        return DOWNLOAD
    if info.state in MOVING:
        return CANCEL
    if info.state in (FileState.FAILED, FileState.CANCELLED):
        return RETRY
    return None


def enter_action(info: FileInfo) -> str | None:
    """What Enter (or a click on the file) does: download or retry a file not here, else
    open it."""
    if info.direction is Direction.INCOMING and info.state in (
        FileState.OFFERED,
        FileState.FAILED,
        FileState.CANCELLED,
    ):
        return DOWNLOAD if info.state is FileState.OFFERED else RETRY
    return OPEN if info.available else None


def actions_for(info: FileInfo) -> list[str]:
    """A file's actions in the message menu, in their order."""
    found = [OPEN, SAVE] if info.available else []
    if info.state is FileState.OFFERED:
        found.append(DOWNLOAD)
    if info.state in MOVING:
        found.append(CANCEL)
    if info.state in (FileState.FAILED, FileState.CANCELLED):
        found.append(RETRY)
    return found


def file_said(info: FileInfo, name: str, online: bool, rate: float = 0.0) -> str:
    """A file read out by a screen reader: what it is, its size, where it stands."""
    what = "Picture" if info.is_image else "File"
    text = f"{what} {safe_text(info.name)}, {size_words(info.size)}"
    if info.state is not FileState.COMPLETE:
        text += f", {state_words(info, name, online, rate)}"
        if info.state is FileState.TRANSFERRING:
            text += f" ({round(fraction(info) * 100)}%)"
    action = enter_action(info)
    if action is not None:
        text += f". Enter: {'open' if action == OPEN else action}"
    return text


def kind_label(name: str) -> str:
    """The short type drawn on a file's icon: its extension ("PDF"), or "FILE"."""
    ext = PurePosixPath(name).suffix.lstrip(".")
    return ext[:4].upper() if ext.isalnum() else "FILE"


@dataclass(frozen=True, slots=True)
class FileBlock:
    """Where a file's parts go, relative to the block's top left."""

    size: QSize
    media: QRect  # the picture, or the icon with name and size
    line: int  # the top of the state line (under the bar, if any); -1: none
    bar: bool  # a progress bar above the state line


def file_block(fm: QFontMetrics, info: FileInfo, width: int, image: QImage | None) -> FileBlock:
    """The block of a file in a bubble at most `width` wide; a picture is as large as what is
    drawn of it allows (`image`: the whole picture or its thumbnail, None for neither)."""
    w = max(120, min(width, PICTURE_SIDE))
    if info.is_image:
        natural = image.size() if image is not None else QSize(w, w * 3 // 4)
        box = fitted(natural, w) if natural.width() > 0 else QSize(w, w * 3 // 4)
        box = QSize(max(box.width(), 48), max(box.height(), 48))
        media = QRect(0, 0, box.width(), box.height())
    else:
        media = QRect(0, 0, w, fm.height() * 2 + GAP)
    height, line, bar = media.height(), -1, False
    if info.state is not FileState.COMPLETE:
        bar = info.state in MOVING
        height += GAP + (BAR_H + GAP if bar else 0)
        line = height
        height += fm.height()
    width_out = max(media.width(), w if line >= 0 else 0)
    return FileBlock(QSize(width_out, height), media, line, bar)


def link_rect(fm: QFontMetrics, origin: QPoint, block: FileBlock, link: str) -> QRect:
    text = LINKS[link]
    width = fm.horizontalAdvance(text) + 4
    left = origin.x() + block.size.width() - width
    return QRect(left, origin.y() + block.line, width, fm.height())


def paint_file(
    painter: QPainter,
    fm: QFontMetrics,
    origin: QPoint,
    block: FileBlock,
    info: FileInfo,
    words: str,
    ink: QColor,
    image: QImage | None,
) -> None:
    """Draw the block with its top left at `origin` in `ink` (the bubble's text colour)."""
    painter.save()
    media = block.media.translated(origin)
    if info.is_image:
        _paint_picture(painter, media, image, ink)
    else:
        _paint_file_row(painter, fm, media, info, ink)
    if block.line >= 0:
        width = block.size.width()
        if block.bar:
            top = origin.y() + block.line - GAP - BAR_H
            _paint_bar(painter, QRect(origin.x(), top, width, BAR_H), fraction(info), ink)
        link = link_for(info)
        text_w = width
        line = QRect(origin.x(), origin.y() + block.line, width, fm.height())
        if link is not None:
            at = link_rect(fm, origin, block, link)
            text_w = at.left() - origin.x() - GAP
            font = painter.font()
            font.setBold(True)
            font.setUnderline(True)
            painter.setFont(font)
            painter.setPen(ink)
            painter.drawText(at, Qt.AlignmentFlag.AlignRight, LINKS[link])
            font.setBold(False)
            font.setUnderline(False)
            painter.setFont(font)
        painter.setPen(ink)
        shown = rebalance(fm.elidedText(words, Qt.TextElideMode.ElideRight, text_w))
        painter.drawText(line.adjusted(0, 0, text_w - width, 0), Qt.AlignmentFlag.AlignLeft, shown)
    painter.restore()


def _paint_picture(painter: QPainter, box: QRect, image: QImage | None, ink: QColor) -> None:
    path = QPainterPath()
    path.addRoundedRect(QRectF(box), 6, 6)
    painter.setClipPath(path)
    if image is None:  # neither the picture nor a thumbnail: a quiet frame
        shade = QColor(ink)
        shade.setAlpha(40)
        painter.fillRect(box, shade)
        painter.setPen(ink)
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, "Picture")
    else:
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(box, image)
    painter.setClipping(False)


def _paint_file_row(
    painter: QPainter, fm: QFontMetrics, box: QRect, info: FileInfo, ink: QColor
) -> None:
    """A page with its corner folded and the type on it, then the name and the size."""
    side = box.height()
    icon = QRectF(box.left(), box.top(), side * 0.8, side)
    fold = side * 0.25
    page = QPainterPath()
    page.moveTo(icon.topLeft())
    page.lineTo(icon.right() - fold, icon.top())
    page.lineTo(icon.right(), icon.top() + fold)
    page.lineTo(icon.bottomRight())
    page.lineTo(icon.bottomLeft())
    page.closeSubpath()
    shade = QColor(ink)
    shade.setAlpha(50)
    painter.setPen(ink)
    painter.setBrush(shade)
    painter.drawPath(page)
    font = painter.font()
    small = font.pointSizeF() * 0.7 if font.pointSizeF() > 0 else 7.0
    label = painter.font()
    label.setPointSizeF(max(small, 5.0))
    label.setBold(True)
    painter.setFont(label)
    painter.drawText(icon, Qt.AlignmentFlag.AlignCenter, kind_label(info.name))
    left = int(icon.right()) + GAP * 2
    text_w = box.right() - left
    name = QRect(left, box.top(), text_w, fm.height())
    font.setBold(True)
    painter.setFont(font)
    shown = safe_text(info.name)
    painter.drawText(
        name,
        Qt.AlignmentFlag.AlignLeft,
        rebalance(QFontMetrics(font).elidedText(shown, Qt.TextElideMode.ElideMiddle, text_w)),
    )
    font.setBold(False)
    painter.setFont(font)
    painter.drawText(
        name.translated(0, fm.height() + GAP), Qt.AlignmentFlag.AlignLeft, size_words(info.size)
    )


def _paint_bar(painter: QPainter, track: QRect, done: float, ink: QColor) -> None:
    shade = QColor(ink)
    shade.setAlpha(60)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(shade)
    radius = track.height() / 2
    painter.drawRoundedRect(QRectF(track), radius, radius)
    if done > 0:
        filled = QRectF(track.left(), track.top(), max(track.height(), track.width() * done), 6)
        filled.setHeight(track.height())
        painter.setBrush(ink)
        painter.drawRoundedRect(filled, radius, radius)
