"""The images panel: the project's images; selecting one shows it, buttons add and remove images."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from ..session import Session


class ImagesPanel(QtWidgets.QWidget):
    """List of the session's images (a dot marks images with labels)."""

    add_requested = QtCore.Signal()
    remove_requested = QtCore.Signal(int)

    def __init__(self, session: Session, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.list = QtWidgets.QListWidget()
        self.list.setMaximumHeight(110)
        self.add_button = QtWidgets.QPushButton("Add...")
        self.remove_button = QtWidgets.QPushButton("Remove")
        buttons = QtWidgets.QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.remove_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        self.list.currentRowChanged.connect(self._on_row)
        self.add_button.clicked.connect(self.add_requested)
        self.remove_button.clicked.connect(lambda: self.remove_requested.emit(self.list.currentRow()))
        session.images_changed.connect(self.refresh)
        session.current_changed.connect(self._select)
        session.saved.connect(lambda _: self.refresh())
        self.refresh()

    def refresh(self) -> None:
        with QtCore.QSignalBlocker(self.list):
            self.list.clear()
            for state in self.session.images:
                n = state.n_slices
                text = state.name + (f"  ({n} slices)" if n > 1 else "")
                item = QtWidgets.QListWidgetItem(text)
                item.setToolTip(str(state.entry.path))
                self.list.addItem(item)
            self.list.setCurrentRow(self.session.current_index)
        self.remove_button.setEnabled(bool(self.session.images))

    def _select(self, image_index: int, _slice: int) -> None:
        with QtCore.QSignalBlocker(self.list):
            self.list.setCurrentRow(image_index)

    def _on_row(self, row: int) -> None:
        if row >= 0:
            self.session.set_current(row, 0)
