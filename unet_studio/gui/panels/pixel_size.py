"""Pixel size input: a value and a unit, in the Display panel and in the Image > Set Pixel Size... dialog.

An image whose file is calibrated shows the file's pixel size, read-only; for the others the person types
the size of a pixel (square pixels), which the project stores per image (``project.json``) and which the
scale bar and the measurements of File > Export use.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from ...core.project import PIXEL_UNITS

DEFAULT_UNIT = "µm"


class PixelSizeEditor(QtWidgets.QWidget):
    """A pixel size spin box (0 = not set) and a unit; emits ``changed(size, unit)`` when the person edits."""

    changed = QtCore.Signal(float, str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.size_spin = QtWidgets.QDoubleSpinBox()
        self.size_spin.setDecimals(4)
        self.size_spin.setRange(0.0, 1e6)
        self.size_spin.setSingleStep(0.01)
        self.size_spin.setSpecialValueText("not set")  # 0 shows as "not set"
        self.size_spin.setKeyboardTracking(False)
        self.size_spin.setToolTip("Width of one pixel: used by the scale bar and by Export's measurements")
        self.unit_combo = QtWidgets.QComboBox()
        self.unit_combo.addItems(list(PIXEL_UNITS))
        self.unit_combo.setCurrentText(DEFAULT_UNIT)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.size_spin, 1)
        layout.addWidget(self.unit_combo)
        self.size_spin.valueChanged.connect(self._emit)
        self.unit_combo.currentTextChanged.connect(self._emit)

    def value(self) -> tuple[float, str]:
        """(size, unit); size 0 when not set."""
        return self.size_spin.value(), self.unit_combo.currentText()

    def show_value(self, size: float | None, unit: str, editable: bool = True, note: str = "") -> None:
        """Show a pixel size (None: not set) without emitting ``changed``."""
        with QtCore.QSignalBlocker(self.size_spin), QtCore.QSignalBlocker(self.unit_combo):
            self.size_spin.setValue(size or 0.0)
            if unit and self.unit_combo.findText(unit) < 0:
                self.unit_combo.addItem(unit)  # a file's own unit ("inch"), shown as it is
            self.unit_combo.setCurrentText(unit or DEFAULT_UNIT)
        self.setEnabled(editable)
        if note:
            self.setToolTip(note)

    def _emit(self) -> None:
        size, unit = self.value()
        self.changed.emit(size, unit)


class PixelSizeDialog(QtWidgets.QDialog):
    """Image > Set Pixel Size...: asks for a value and a unit; ``chosen(size, unit)`` on OK."""

    chosen = QtCore.Signal(float, str)

    def __init__(self, size: float | None, unit: str, image_name: str,
                 parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Set Pixel Size")
        self.editor = PixelSizeEditor()
        self.editor.show_value(size, unit)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Ok
                                             | QtWidgets.QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addWidget(QtWidgets.QLabel(f"Size of one pixel of {image_name} (0: not calibrated):"))
        layout.addWidget(self.editor)
        layout.addWidget(buttons)
        self.accepted.connect(lambda: self.chosen.emit(*self.editor.value()))
