"""Accessible names: every control a person can reach gets one, so screen readers say what
it does. Widgets name their important controls themselves; `name_controls` fills in the
rest from a button's text or a form label, and the tests check nothing is left nameless."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractButton,
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QWidget,
)

CONTROLS = (QAbstractButton, QLineEdit, QPlainTextEdit, QComboBox, QAbstractItemView)


def _clean(text: str) -> str:
    return text.replace("&&", "\0").replace("&", "").replace("\0", "&").strip(" .…")


def name_controls(root: QWidget) -> None:
    for layout_owner in [root, *root.findChildren(QWidget)]:
        form = layout_owner.layout()
        if isinstance(form, QFormLayout):
            for row in range(form.rowCount()):
                label = form.itemAt(row, QFormLayout.ItemRole.LabelRole)
                field = form.itemAt(row, QFormLayout.ItemRole.FieldRole)
                if label is None or field is None:
                    continue
                label_w, field_w = label.widget(), field.widget()
                if isinstance(label_w, QLabel) and field_w is not None and label_w.text():
                    label_w.setBuddy(field_w)
                    if not field_w.accessibleName():
                        field_w.setAccessibleName(_clean(label_w.text()))
    for control in root.findChildren(QWidget):
        if isinstance(control, CONTROLS) and not control.accessibleName():
            if isinstance(control, QAbstractButton) and control.text():
                control.setAccessibleName(_clean(control.text()))
            elif control.toolTip():
                control.setAccessibleName(_clean(control.toolTip()))


def nameless(root: QWidget) -> list[QWidget]:
    """Controls under root that take focus and have no accessible name."""
    found: list[QWidget] = []
    for control in [root, *root.findChildren(QWidget)]:
        if (
            isinstance(control, CONTROLS)
            and not control.accessibleName()
            and control.focusPolicy() != Qt.FocusPolicy.NoFocus
            and (control is root or control.isVisibleTo(root))  # not a combo's hidden popup
        ):
            found.append(control)
    return found
