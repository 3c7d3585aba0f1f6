"""What the PyInstaller specs share: where the sources are, the version, what to leave out.

The specs import this module (PyInstaller runs a spec as Python with SPECPATH set); nothing
else does.
"""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

PACKAGING = Path(__file__).resolve().parent
ROOT = PACKAGING.parent


def version() -> str:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return str(tomllib.load(f)["project"]["version"])


# Qt modules AnonChat does not use. PyInstaller collects a Qt module (and its plugins and
# shared libraries) only when something imports it, but optional imports inside PySide6,
# qasync and Pillow can pull in large ones; listing them keeps the bundle to QtCore, QtGui,
# QtWidgets and what they need (QtMultimedia, QtSvg, QtNetwork, QtDBus, QtOpenGL stay
# allowed: the camera scanner and icon rendering may use them).
QT_UNUSED = [
    "Qt3DAnimation",
    "Qt3DCore",
    "Qt3DExtras",
    "Qt3DInput",
    "Qt3DLogic",
    "Qt3DRender",
    "QtAxContainer",
    "QtBluetooth",
    "QtCharts",
    "QtConcurrent",
    "QtDataVisualization",
    "QtDesigner",
    "QtGraphs",
    "QtGraphsWidgets",
    "QtHelp",
    "QtHttpServer",
    "QtLocation",
    "QtNetworkAuth",
    "QtNfc",
    "QtPdf",
    "QtPdfWidgets",
    "QtPositioning",
    "QtQml",
    "QtQuick",
    "QtQuick3D",
    "QtQuickControls2",
    "QtQuickTest",
    "QtQuickWidgets",
    "QtRemoteObjects",
    "QtScxml",
    "QtSensors",
    "QtSerialBus",
    "QtSerialPort",
    "QtSpatialAudio",
    "QtSql",
    "QtStateMachine",
    "QtTest",
    "QtTextToSpeech",
    "QtUiTools",
    "QtWebChannel",
    "QtWebEngineCore",
    "QtWebEngineQuick",
    "QtWebEngineWidgets",
    "QtWebSockets",
    "QtWebView",
    "QtXml",
]

# Other bindings qasync could pick, and standard-library parts no entry point reaches.
ALWAYS_EXCLUDED = [
    "PyQt5",
    "PyQt6",
    "PySide2",
    "tkinter",
    "_tkinter",
    "pydoc",
    "lib2to3",
    "pytest",
    "hypothesis",
    "mypy",
]

APP_EXCLUDES = [f"PySide6.{name}" for name in QT_UNUSED] + ALWAYS_EXCLUDED

# The relay is websockets, msgpack and cryptography: nothing of the desktop app.
RELAY_EXCLUDES = [
    *ALWAYS_EXCLUDED,
    "PySide6",
    "shiboken6",
    "qasync",
    "PIL",
    "segno",
    "zxingcpp",
    "sqlcipher3",
    "keyring",
    "app",
]

# Files the PySide6 hooks collect for plug-ins a desktop messenger never loads: the PDF image
# format and the virtual keyboard (which drag in QtPdf, QtQml and QtQuick, a third of the
# Qt libraries), and the platforms for kiosks and framebuffers. Kept: xcb, wayland,
# offscreen (the self-test) and minimal.
QT_DROPPED_FILES = [
    "PySide6/Qt/plugins/imageformats/libqpdf.so",
    "PySide6/Qt/plugins/platforminputcontexts/libqtvirtualkeyboardplugin.so",
    "PySide6/Qt/plugins/platforms/libqeglfs.so",
    "PySide6/Qt/plugins/platforms/libqlinuxfb.so",
    "PySide6/Qt/plugins/platforms/libqminimalegl.so",
    "PySide6/Qt/plugins/platforms/libqvkkhrdisplay.so",
    "PySide6/Qt/plugins/platforms/libqvnc.so",
    "PySide6/Qt/plugins/egldeviceintegrations/*",
    "PySide6/Qt/plugins/generic/*",
    "PySide6/Qt/lib/libQt6EglFSDeviceIntegration.so*",
    "PySide6/Qt/lib/libQt6EglFsKmsSupport.so*",
    "PySide6/Qt/lib/libQt6Pdf.so*",
    "PySide6/Qt/lib/libQt6Qml*.so*",
    "PySide6/Qt/lib/libQt6Quick*.so*",
    "PySide6/Qt/lib/libQt6VirtualKeyboard*.so*",
]


def keep(entries: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """A TOC without the files matched by QT_DROPPED_FILES."""
    return [e for e in entries if not any(fnmatch(e[0], p) for p in QT_DROPPED_FILES)]
