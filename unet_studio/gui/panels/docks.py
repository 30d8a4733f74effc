"""The window's two docks: the project column (images, classes, display, overlay) and the training column."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets


def scrolling(widget: QtWidgets.QWidget) -> QtWidgets.QScrollArea:
    """``widget`` in a vertical scroll area as wide as it needs (for small screens)."""
    area = QtWidgets.QScrollArea()
    area.setWidget(widget)
    area.setWidgetResizable(True)
    area.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    # As wide as the panels need, plus room for a vertical scroll bar.
    area.setMinimumWidth(widget.minimumSizeHint().width() + area.verticalScrollBar().sizeHint().width() + 4)
    return area


def group(title: str, widget: QtWidgets.QWidget) -> QtWidgets.QGroupBox:
    """``widget`` in a titled box."""
    box = QtWidgets.QGroupBox(title)
    layout = QtWidgets.QVBoxLayout(box)
    layout.setContentsMargins(4, 4, 4, 4)
    layout.addWidget(widget)
    return box


def add_docks(window: QtWidgets.QMainWindow, left: list[tuple[str | None, QtWidgets.QWidget]],
              right: list[tuple[str | None, QtWidgets.QWidget]]) -> list[QtWidgets.QDockWidget]:
    """Add a "Project" dock on the left and a "Train" dock on the right, each a column of panels.

    Each panel comes with its title (a titled box around it) or None (the panel has its own boxes).
    """
    docks = []
    for title, panels, area in (("Project", left, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea),
                                ("Train", right, QtCore.Qt.DockWidgetArea.RightDockWidgetArea)):
        column_widget = QtWidgets.QWidget()
        column = QtWidgets.QVBoxLayout(column_widget)
        for panel_title, panel in panels:
            column.addWidget(panel if panel_title is None else group(panel_title, panel))
        column.addStretch(1)
        dock = QtWidgets.QDockWidget(title, window)
        dock.setObjectName(f"dock_{title}")
        dock.setWidget(scrolling(column_widget))
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        window.addDockWidget(area, dock)
        docks.append(dock)
    window.resizeDocks(docks, [dock.minimumSizeHint().width() for dock in docks], QtCore.Qt.Orientation.Horizontal)
    return docks
