"""A scale bar on the canvas: a round length (1, 2 or 5 x 10^k) about a fifth of the view wide, bottom right.

The bar is drawn in screen pixels on top of the image view (it is a child of the ``ViewBox``, not of the
image, so it neither zooms nor pans) and is re-laid out when the view's range or size changes. Its length
comes from :func:`scale_bar_length`, a pure function the tests check without a display.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

#: Units from small to large, with their size in metres, so that 2000 µm shows as 2 mm.
UNIT_METRES = {"nm": 1e-9, "µm": 1e-6, "mm": 1e-3, "cm": 1e-2, "m": 1.0}
MARGIN = 12         # screen pixels from the view's bottom-right corner
BAR_HEIGHT = 5
FRACTION = 0.2      # the bar's target share of the view width

__all__ = ["ScaleBar", "nice_length", "scale_bar_length", "format_length"]


def nice_length(target: float) -> float:
    """The largest 1, 2 or 5 x 10^k that is at most ``target`` (``target`` itself when it is not positive)."""
    if not target > 0 or not math.isfinite(target):
        return target
    power = 10.0 ** math.floor(math.log10(target))
    for step in (5.0, 2.0, 1.0):
        if step * power <= target * (1 + 1e-9):
            return step * power
    return power


def scale_bar_length(view_width_px: float, image_pixels_in_view: float, pixel_size: float) -> tuple[float, float]:
    """The bar's physical length and its length in screen pixels.

    Parameters
    ----------
    view_width_px : float
        Width of the view on screen, in screen pixels.
    image_pixels_in_view : float
        How many image pixels the view spans horizontally (changes with zoom).
    pixel_size : float
        Physical width of one image pixel.
    """
    physical_width = image_pixels_in_view * pixel_size
    length = nice_length(physical_width * FRACTION)
    return length, length / physical_width * view_width_px


def format_length(length: float, unit: str) -> str:
    """``"50 µm"``; a metric length moves to the unit that keeps the number between 1 and 1000 (``"2 mm"``)."""
    if unit in UNIT_METRES and length > 0:
        metres = length * UNIT_METRES[unit]
        for name, size in UNIT_METRES.items():
            if name != "cm" and (1 <= metres / size < 1000 or name == "m"):  # steps of 1000, as microscopists write
                length, unit = metres / size, name
                break
    return f"{float(f'{length:.6g}'):g} {unit}".strip()  # 6 digits: no 49.99999 from the unit change


class ScaleBar(QtWidgets.QGraphicsObject):
    """The bar and its label, a child of ``viewbox`` in screen coordinates; hidden when there is no calibration."""

    def __init__(self, viewbox: pg.ViewBox) -> None:
        super().__init__(viewbox)
        self.viewbox = viewbox
        self.setZValue(1000)
        self.pixel_size: float | None = None
        self.unit = ""
        self.enabled = True
        self.length = 0.0          # physical length of the bar now shown
        self.text = ""
        self._bar = QtCore.QRectF()
        self._font = QtGui.QFont()
        self._font.setPointSize(10)
        self._font.setBold(True)
        viewbox.sigRangeChanged.connect(self.relayout)
        viewbox.sigResized.connect(self.relayout)
        self.setVisible(False)

    def set_calibration(self, pixel_size: float | None, unit: str) -> None:
        """The physical width of an image pixel in ``unit`` (None: uncalibrated, no bar)."""
        self.pixel_size = pixel_size if pixel_size and pixel_size > 0 else None
        self.unit = unit
        self.relayout()

    def set_enabled(self, enabled: bool) -> None:
        """Show the bar whenever the image is calibrated (the View menu's toggle)."""
        self.enabled = bool(enabled)
        self.relayout()

    def relayout(self, *_) -> None:
        (x0, x1), _ = self.viewbox.viewRange()
        width, height = self.viewbox.width(), self.viewbox.height()
        show = self.enabled and self.pixel_size is not None and x1 > x0 and width > 0
        self.setVisible(show)
        if not show:
            return
        self.prepareGeometryChange()
        self.length, bar_px = scale_bar_length(width, x1 - x0, self.pixel_size)
        self.text = format_length(self.length, self.unit)
        self._bar = QtCore.QRectF(width - MARGIN - bar_px, height - MARGIN - BAR_HEIGHT, bar_px, BAR_HEIGHT)
        self.update()

    def bar_rect(self) -> QtCore.QRectF:
        """The bar in the view box's (screen) coordinates."""
        return QtCore.QRectF(self._bar)

    def _text_rect(self) -> QtCore.QRectF:
        metrics = QtGui.QFontMetricsF(self._font)
        text_width = metrics.horizontalAdvance(self.text) + 4
        centre = self._bar.center().x()
        return QtCore.QRectF(centre - text_width / 2, self._bar.top() - metrics.height() - 2, text_width,
                             metrics.height())

    def boundingRect(self) -> QtCore.QRectF:
        return self._bar.united(self._text_rect()).adjusted(-3, -3, 3, 3)

    def paint(self, painter: QtGui.QPainter, *_) -> None:
        # A dark outline keeps the white bar and label readable on bright images.
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        painter.setPen(QtGui.QPen(QtGui.QColor(0, 0, 0, 180), 1.5))
        painter.setBrush(QtGui.QColor(255, 255, 255))
        painter.drawRect(self._bar)
        painter.setFont(self._font)
        path = QtGui.QPainterPath()
        metrics = QtGui.QFontMetricsF(self._font)
        rect = self._text_rect()
        path.addText(rect.left() + 2, rect.top() + metrics.ascent(), self._font, self.text)
        painter.strokePath(path, QtGui.QPen(QtGui.QColor(0, 0, 0, 200), 3))
        painter.fillPath(path, QtGui.QColor(255, 255, 255))
