"""The display panel: which channel to show (or a composite) and the contrast, from percentiles.

It mirrors the ``channel`` and ``contrast`` of a :class:`~unet_studio.gui.view_state.ViewState`: the
controls write to the state, and the panel follows the state with its widgets' signals blocked.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from ..view_state import COMPOSITE, ViewState


class DisplayPanel(QtWidgets.QWidget):
    """Channel choice and percentile contrast, bound to a view state."""

    def __init__(self, view: ViewState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.channel_combo = QtWidgets.QComboBox()
        self.low_spin = QtWidgets.QDoubleSpinBox()
        self.high_spin = QtWidgets.QDoubleSpinBox()
        for spin in (self.low_spin, self.high_spin):
            spin.setRange(0.0, 100.0)
            spin.setDecimals(1)
            spin.setSingleStep(0.5)
            spin.setSuffix(" %")
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
        self._follow("contrast", view.contrast)
        view.connect(self._follow)

    def set_channels(self, names: list[str]) -> None:
        """Offer ``names`` (and a composite when there are several), showing the state's channel."""
        with QtCore.QSignalBlocker(self.channel_combo):
            self.channel_combo.clear()
            for index, name in enumerate(names):
                self.channel_combo.addItem(name, index)
            if len(names) > 1:
                self.channel_combo.addItem("Composite", COMPOSITE)
        self.channel_combo.setEnabled(len(names) > 1)
        self._follow("channel", self.view.channel)

    def _follow(self, name: str, value) -> None:
        if name == "contrast":
            for spin, percentile in zip((self.low_spin, self.high_spin), value):
                with QtCore.QSignalBlocker(spin):
                    spin.setValue(float(percentile))
        elif name == "channel":
            with QtCore.QSignalBlocker(self.channel_combo):
                self.channel_combo.setCurrentIndex(max(self.channel_combo.findData(value), 0))

    def _on_channel(self, position: int) -> None:
        if position >= 0:
            self.view.update(channel=int(self.channel_combo.itemData(position)))

    def _on_percentiles(self) -> None:
        low, high = self.low_spin.value(), self.high_spin.value()
        if high > low:
            self.view.update(contrast=(low, high))
