"""The display panel: which channel to show (or a composite) and the contrast, from percentiles."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from ..canvas import COMPOSITE


class DisplayPanel(QtWidgets.QWidget):
    """Channel choice and percentile contrast; emits what the person chose, shows what it is told."""

    channel_changed = QtCore.Signal(int)                # channel index, or COMPOSITE (-1)
    percentiles_changed = QtCore.Signal(float, float)   # low, high

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.channel_combo = QtWidgets.QComboBox()
        self.low_spin = QtWidgets.QDoubleSpinBox()
        self.high_spin = QtWidgets.QDoubleSpinBox()
        for spin, value in ((self.low_spin, 1.0), (self.high_spin, 99.8)):
            spin.setRange(0.0, 100.0)
            spin.setDecimals(1)
            spin.setSingleStep(0.5)
            spin.setSuffix(" %")
            spin.setValue(value)
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(self._on_percentiles)
        self.low_spin.setToolTip("Values below this percentile show black")
        self.high_spin.setToolTip("Values above this percentile show white")
        self.channel_combo.currentIndexChanged.connect(self._on_channel)
        contrast = QtWidgets.QHBoxLayout()
        contrast.addWidget(self.low_spin)
        contrast.addWidget(QtWidgets.QLabel("to"))
        contrast.addWidget(self.high_spin)
        form = QtWidgets.QFormLayout(self)
        form.setContentsMargins(4, 4, 4, 4)
        form.addRow("Channel", self.channel_combo)
        form.addRow("Contrast", contrast)

    def set_channels(self, names: list[str], current: int) -> None:
        """Offer ``names`` (and a composite when there are several) and select ``current``."""
        with QtCore.QSignalBlocker(self.channel_combo):
            self.channel_combo.clear()
            for index, name in enumerate(names):
                self.channel_combo.addItem(name, index)
            if len(names) > 1:
                self.channel_combo.addItem("Composite", COMPOSITE)
            position = self.channel_combo.findData(current)
            self.channel_combo.setCurrentIndex(max(position, 0))
        self.channel_combo.setEnabled(len(names) > 1)

    def set_percentiles(self, low: float, high: float) -> None:
        """Show ``low``, ``high`` without emitting anything."""
        for spin, value in ((self.low_spin, low), (self.high_spin, high)):
            with QtCore.QSignalBlocker(spin):
                spin.setValue(float(value))

    def _on_channel(self, position: int) -> None:
        if position >= 0:
            self.channel_changed.emit(int(self.channel_combo.itemData(position)))

    def _on_percentiles(self) -> None:
        low, high = self.low_spin.value(), self.high_spin.value()
        if high <= low:
            return
        self.percentiles_changed.emit(low, high)
