"""The classes panel: the project's classes with their colours; add, rename, recolour, delete, select.

The selected row is the class the brush paints (number keys select it too). "Add boundary class" adds the
class painted between touching objects (see :meth:`~..class_editing.ClassEditing.add_boundary`). The panel reads and
changes classes only through the session and rebuilds itself on ``classes_changed``; while it updates
its own widgets it blocks their signals, so nothing echoes back.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from ..session import Session

#: The classes panel's action that adds the boundary class.
BOUNDARY_TEXT = "Add boundary class (separates touching objects)"


def color_icon(color: str, size: int = 14) -> QtGui.QIcon:
    pixmap = QtGui.QPixmap(size, size)
    pixmap.fill(QtGui.QColor(color))
    return QtGui.QIcon(pixmap)


class ClassesPanel(QtWidgets.QWidget):
    """List of classes bound to a :class:`Session`."""

    #: Asks the window to confirm deleting a class (index); the window calls :meth:`delete_class`.
    delete_requested = QtCore.Signal(int)

    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.list = QtWidgets.QListWidget()
        self.list.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.DoubleClicked
                                  | QtWidgets.QAbstractItemView.EditTrigger.EditKeyPressed)
        self.list.setMaximumHeight(130)
        self.list.setToolTip("Class painted by the brush (keys 1-9). Double-click a name to rename it.")
        self.add_button = QtWidgets.QPushButton("Add")
        self.color_button = QtWidgets.QPushButton("Colour...")
        self.delete_button = QtWidgets.QPushButton("Delete")
        self.add_boundary_action = QtGui.QAction(BOUNDARY_TEXT, self)
        self.add_boundary_action.setToolTip("Paint this class between touching objects: it is trained as background "
                                            "with a high weight, so that the objects come out separate")
        self.add_boundary_action.triggered.connect(lambda: self.session.class_editing.add_boundary())
        self.boundary_button = QtWidgets.QToolButton()
        self.boundary_button.setDefaultAction(self.add_boundary_action)
        self.boundary_button.setText("Add boundary")
        self.list.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.ActionsContextMenu)
        self.list.addAction(self.add_boundary_action)
        buttons = QtWidgets.QHBoxLayout()
        for button in (self.add_button, self.color_button, self.delete_button):
            button.setAutoDefault(False)
            buttons.addWidget(button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        layout.addWidget(self.boundary_button)

        self.list.currentRowChanged.connect(self._on_row_changed)
        self.list.itemChanged.connect(self._on_item_changed)
        self.add_button.clicked.connect(lambda: self.session.class_editing.add())
        self.color_button.clicked.connect(self.choose_color)
        self.delete_button.clicked.connect(lambda: self.delete_requested.emit(self.list.currentRow()))
        session.classes_changed.connect(self.refresh)
        session.active_class_changed.connect(self._select)
        self.refresh()

    def refresh(self) -> None:
        with QtCore.QSignalBlocker(self.list):
            self.list.clear()
            for index, info in enumerate(self.session.classes):
                item = QtWidgets.QListWidgetItem(color_icon(info.color), info.name)
                item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsEditable)
                key = f"key {index + 1}" if index < 9 else ""
                if info.boundary:
                    item.setToolTip(f"{key}: boundary class, painted between touching objects (trained as "
                                    "background with a high weight)".lstrip(": "))
                    font = item.font()
                    font.setItalic(True)
                    item.setFont(font)
                else:
                    item.setToolTip(key)
                self.list.addItem(item)
            self.list.setCurrentRow(self.session.active_class)
        self.delete_button.setEnabled(len(self.session.classes) > 1)

    def _select(self, index: int) -> None:
        with QtCore.QSignalBlocker(self.list):
            self.list.setCurrentRow(index)

    def _on_row_changed(self, row: int) -> None:
        if row >= 0:
            self.session.set_active_class(row)

    def _on_item_changed(self, item: QtWidgets.QListWidgetItem) -> None:
        row = self.list.row(item)
        name = item.text().strip()
        if name:
            self.session.class_editing.rename(row, name)
        else:
            self.refresh()

    def choose_color(self) -> None:
        row = self.list.currentRow()
        if row < 0:
            return
        current = QtGui.QColor(self.session.classes[row].color)
        color = QtWidgets.QColorDialog.getColor(current, self, f"Colour of {self.session.classes[row].name}")
        if color.isValid():
            self.session.class_editing.recolor(row, color.name())

    def delete_class(self, row: int) -> None:
        if 0 <= row < len(self.session.classes):
            self.session.class_editing.remove(row)
