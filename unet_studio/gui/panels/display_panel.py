"""The display panel: which channel to show (or a composite), its contrast with a histogram, the pixel size.

It mirrors the ``channel``, ``contrast_channel``, ``contrast`` and ``levels`` of a
:class:`~unet_studio.gui.view_state.ViewState`: the controls write to the state, and the panel follows the
state with its widgets' signals blocked. Contrast works as in Fiji: drag the histogram's region to set a
channel's levels (kept from slice to slice), or press Auto to let each slice's percentiles set them. In a
composite each channel keeps its own levels; "Contrast of" chooses the channel the histogram edits.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from ..view_state import COMPOSITE, ViewState
from .histogram import ContrastHistogram
from .pixel_size import PixelSizeEditor


class DisplayPanel(QtWidgets.QWidget):
    """Channel choice, histogram contrast, percentile auto-contrast and pixel size, bound to a view state.

    Signals
    -------
    pixel_size_requested(float, str)
        The person typed a pixel size (0: not calibrated) for the current image.
    """

    pixel_size_requested = QtCore.Signal(float, str)

    def __init__(self, view: ViewState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.channel_combo = QtWidgets.QComboBox()
        self.contrast_channel_combo = QtWidgets.QComboBox()
        self.contrast_channel_combo.setToolTip("The channel of the composite whose contrast the histogram sets")
        self.histogram = ContrastHistogram()
        self.low_spin = QtWidgets.QDoubleSpinBox()
        self.high_spin = QtWidgets.QDoubleSpinBox()
        for spin in (self.low_spin, self.high_spin):
            spin.setRange(0.0, 100.0)
            spin.setDecimals(1)
            spin.setSingleStep(0.5)
            spin.setSuffix(" %")
            spin.setKeyboardTracking(False)
            spin.valueChanged.connect(self._on_percentiles)
        self.low_spin.setToolTip("Auto contrast: values below this percentile show black")
        self.high_spin.setToolTip("Auto contrast: values above this percentile show white")
        self.pixel_size = PixelSizeEditor()
        self.scale_bar_action = QtGui.QAction("Scale &Bar", self)
        self.scale_bar_action.setCheckable(True)
        self.scale_bar_action.setToolTip("Show a scale bar on images with a pixel size")
        self.scale_bar_action.toggled.connect(lambda on: self.view.update(scale_bar=on))
        self.channel_combo.currentIndexChanged.connect(self._on_channel)
        self.contrast_channel_combo.currentIndexChanged.connect(self._on_contrast_channel)
        self.histogram.levels_changed.connect(
            lambda low, high: self.view.set_channel_levels(self.view.edited_channel, (low, high)))
        self.histogram.auto_requested.connect(lambda: self.view.set_channel_levels(self.view.edited_channel, None))
        self.pixel_size.changed.connect(self.pixel_size_requested)
        self._layout()
        for name in ("contrast", "scale_bar", "channel"):
            self._follow(name, getattr(view, name))
        view.connect(self._follow)

    def _layout(self) -> None:
        contrast = QtWidgets.QHBoxLayout()
        contrast.addWidget(self.low_spin)
        contrast.addWidget(QtWidgets.QLabel("to"))
        contrast.addWidget(self.high_spin)
        form = QtWidgets.QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Channel", self.channel_combo)
        form.addRow("Contrast of", self.contrast_channel_combo)
        self.contrast_channel_label = form.labelForField(self.contrast_channel_combo)
        bottom = QtWidgets.QFormLayout()
        bottom.setContentsMargins(0, 0, 0, 0)
        bottom.addRow("Auto range", contrast)
        bottom.addRow("Pixel size", self.pixel_size)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.setSpacing(4)
        layout.addLayout(form)
        layout.addWidget(self.histogram)
        layout.addLayout(bottom)

    def set_channels(self, names: list[str]) -> None:
        """Offer ``names`` (and a composite when there are several), showing the state's channel."""
        with QtCore.QSignalBlocker(self.channel_combo), QtCore.QSignalBlocker(self.contrast_channel_combo):
            self.channel_combo.clear()
            self.contrast_channel_combo.clear()
            for index, name in enumerate(names):
                self.channel_combo.addItem(name, index)
                self.contrast_channel_combo.addItem(name, index)
            if len(names) > 1:
                self.channel_combo.addItem("Composite", COMPOSITE)
        self.channel_combo.setEnabled(len(names) > 1)
        self._follow("channel", self.view.channel)
        self._follow("contrast_channel", self.view.contrast_channel)

    def show_histogram(self, centers: np.ndarray, counts: np.ndarray, levels: tuple[float, float],
                       color: tuple[int, int, int]) -> None:
        """Show the edited channel's histogram (from the binder), its levels and colour."""
        self.histogram.show_histogram(centers, counts, levels, color)

    def show_calibration(self, size: float | None, unit: str, from_file: bool) -> None:
        """Show the current image's pixel size; a file's own calibration is shown read-only."""
        note = ("From the image file" if from_file else
                "Size of one pixel (0: not set): for the scale bar and Export's measurements")
        self.pixel_size.show_value(size, unit, editable=not from_file, note=note)

    def _follow(self, name: str, value) -> None:
        if name == "contrast":
            for spin, percentile in zip((self.low_spin, self.high_spin), value):
                with QtCore.QSignalBlocker(spin):
                    spin.setValue(float(percentile))
        elif name == "channel":
            with QtCore.QSignalBlocker(self.channel_combo):
                self.channel_combo.setCurrentIndex(max(self.channel_combo.findData(value), 0))
            composite = value == COMPOSITE
            self.contrast_channel_combo.setVisible(composite)
            self.contrast_channel_label.setVisible(composite)
        elif name == "contrast_channel":
            with QtCore.QSignalBlocker(self.contrast_channel_combo):
                self.contrast_channel_combo.setCurrentIndex(max(self.contrast_channel_combo.findData(value), 0))
        elif name == "scale_bar":
            with QtCore.QSignalBlocker(self.scale_bar_action):
                self.scale_bar_action.setChecked(bool(value))

    def _on_channel(self, position: int) -> None:
        if position >= 0:
            self.view.update(channel=int(self.channel_combo.itemData(position)))

    def _on_contrast_channel(self, position: int) -> None:
        if position >= 0:
            self.view.update(contrast_channel=int(self.contrast_channel_combo.itemData(position)))

    def _on_percentiles(self) -> None:
        low, high = self.low_spin.value(), self.high_spin.value()
        if high > low:
            self.view.update(contrast=(low, high))
