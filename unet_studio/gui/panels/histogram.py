"""The contrast histogram of the Display panel: pyqtgraph's ``HistogramLUTWidget``, laid out horizontally.

It shows the histogram of one channel of the visible slice (counts on a log scale, so that the faint
objects are visible next to the background peak) and that channel's display levels as a region the person
drags. The histogram comes from the binder (computed on a subsample, once per slice or channel change,
never on a paint); the widget is not linked to the image item itself, because levels live in the view
state (one per channel, for composites) and the canvas renders from there.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

HEIGHT = 130


class ContrastHistogram(QtWidgets.QWidget):
    """A histogram with a draggable levels region and an Auto button.

    Signals
    -------
    levels_changed(float, float)
        The person dragged the region (emitted while dragging).
    auto_requested()
        The person pressed Auto: the levels follow the percentiles of each slice again.
    """

    levels_changed = QtCore.Signal(float, float)
    auto_requested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.lut_widget = pg.HistogramLUTWidget(orientation="horizontal", gradientPosition="bottom")
        self.lut_widget.setBackground(None)
        self.lut_widget.setMinimumHeight(HEIGHT)
        self.lut_widget.setMaximumHeight(HEIGHT)
        self.lut_widget.setMinimumWidth(160)
        self.item = self.lut_widget.item
        self.item.gradient.setEnabled(False)  # a colour ramp of the channel, not an editor
        self.item.vb.setMouseEnabled(x=False, y=False)
        self.item.vb.setMenuEnabled(False)
        # A dark histogram under a faint region: the shape stays readable where the region covers it.
        self.item.plot.setBrush(pg.mkBrush(70, 70, 80, 200))
        self.item.plot.setPen(pg.mkPen(40, 40, 50))
        self.item.region.setBrush(pg.mkBrush(60, 130, 230, 35))
        self.item.sigLevelsChanged.connect(lambda _: self._on_region(finished=False))
        self.item.sigLevelChangeFinished.connect(lambda _: self._on_region(finished=True))
        self.auto_button = QtWidgets.QPushButton("Auto")
        self.auto_button.setToolTip("Contrast from the percentiles of each slice (below)")
        self.auto_button.clicked.connect(self.auto_requested)
        self.range_label = QtWidgets.QLabel()
        self.range_label.setToolTip("Display levels: values at or below the first show black, at or above "
                                    "the second full colour. Drag the region's edges to change them.")
        row = QtWidgets.QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.range_label, 1)
        row.addWidget(self.auto_button)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.lut_widget)
        layout.addLayout(row)
        self._following = False
        self._data_range = (0.0, 1.0)
        #: Follow the drag live; False for big images, whose every re-render would make the drag stutter:
        #: they change when the drag ends.
        self.live = True

    def show_histogram(self, centers: np.ndarray, counts: np.ndarray, levels: tuple[float, float],
                       color: tuple[int, int, int] = (255, 255, 255)) -> None:
        """Show a channel's histogram (bin centres, counts), its levels and its colour."""
        counts = np.log1p(np.asarray(counts, dtype=np.float64))  # log: the background peak does not flatten all
        self.item.plot.setData(np.asarray(centers, dtype=np.float64), counts)
        self.item.gradient.restoreState({"mode": "rgb", "ticks": [(0.0, (0, 0, 0, 255)), (1.0, (*color, 255))]})
        self._data_range = (float(centers[0]), float(centers[-1])) if len(centers) else (0.0, 1.0)
        self.item.vb.setYRange(0, max(float(counts.max(initial=0.0)), 1.0), padding=0.05)
        self.set_levels(levels)

    def set_levels(self, levels: tuple[float, float]) -> None:
        """Show ``levels`` as the region (no signal), widening the view to hold them."""
        low, high = (float(v) for v in levels)
        self._following = True
        try:
            self.item.setLevels(low, high)
        finally:
            self._following = False
        first, last = self._data_range
        self.item.setHistogramRange(min(first, low), max(last, high), padding=0.05)
        self.range_label.setText(f"{low:.6g} - {high:.6g}")

    def levels(self) -> tuple[float, float]:
        """The region shown, (low, high)."""
        low, high = self.item.getLevels()
        return float(low), float(high)

    def _on_region(self, finished: bool) -> None:
        if self._following:
            return
        low, high = self.levels()
        self.range_label.setText(f"{low:.6g} - {high:.6g}")
        if high > low and (self.live or finished):
            self.levels_changed.emit(low, high)
