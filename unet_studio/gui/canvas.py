"""The image canvas: raw image, prediction overlay and label overlay in one pyqtgraph view, a slice slider.

Every layer is an ``ImageItem`` with ``axisOrder='row-major'``, explicit levels and a uint8 lookup table
of at most 256 entries. The label overlay is cut into tiles (one ``ImageItem`` per tile): a brush stroke
re-renders only the tiles its box touches, so painting stays fluid on big images. Scene coordinates are
pixel edges: pixel ``(i, j)`` covers ``[j, j + 1) x [i, i + 1)``; the painting tools work with pixel
centres (``(i, j)``), as :class:`~unet_studio.core.labels.LabelVolume` does.

A big image (a :class:`~.big_image.BigSlice` given to :meth:`ImageCanvas.set_raw`) is shown by a
:class:`~.big_image.PyramidView`: its overview in the raw item, scaled to the image, tiles of the level that
fits the view above it, and its labels as one overlay sampled at the screen's resolution.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from .big_image import BigSlice, PyramidView, open_pyramid
from .composite import CHANNEL_COLORS, Levels, channel_colors, composite_rgb, is_rgb, percentile_levels
from .scale_bar import ScaleBar
from .view_state import COMPOSITE

__all__ = ["CHANNEL_COLORS", "COMPOSITE", "ImageCanvas", "TILE", "label_lut", "percentile_levels", "probability_lut"]

TILE = 256


def label_lut(colors: list[tuple[int, int, int]], alpha: int = 255) -> np.ndarray:
    """A (256, 4) uint8 RGBA table: 0 transparent, value k -> colour of class k - 1."""
    lut = np.zeros((256, 4), dtype=np.uint8)
    for k, rgb in enumerate(colors[:255]):
        lut[k + 1, :3] = rgb
        lut[k + 1, 3] = alpha
    return lut


def probability_lut(rgb: tuple[int, int, int], threshold: float = 0.0) -> np.ndarray:
    """A (256, 4) table for one class's probability: transparent -> the class colour, cut below threshold."""
    lut = np.zeros((256, 4), dtype=np.uint8)
    ramp = np.arange(256, dtype=np.float32) / 255.0
    lut[:, :3] = np.asarray(rgb, dtype=np.uint8)
    lut[:, 3] = np.rint(np.sqrt(ramp) * 255).astype(np.uint8)  # sqrt: faint evidence stays visible
    lut[: int(np.ceil(threshold * 255)), 3] = 0
    return lut


class ImageCanvas(QtWidgets.QWidget):
    """The view. Signals carry pixel coordinates; the canvas itself never changes the session."""

    slice_requested = QtCore.Signal(int)
    cursor_moved = QtCore.Signal(int, int)   # row, column (pixel indices), -1, -1 outside the image
    files_dropped = QtCore.Signal(list)      # list of paths

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.view = pg.GraphicsView(background="#1e1e1e")
        self.viewbox = pg.ViewBox(invertY=True, lockAspect=True, enableMenu=False)
        self.view.setCentralItem(self.viewbox)
        self.raw_item = pg.ImageItem(axisOrder="row-major")
        self.prediction_item = pg.ImageItem(axisOrder="row-major")
        self.prediction_item.setZValue(1)
        self.viewbox.addItem(self.raw_item)
        self.viewbox.addItem(self.prediction_item)
        self.label_tiles: dict[tuple[int, int], pg.ImageItem] = {}
        self.brush_outline = QtWidgets.QGraphicsEllipseItem()
        self.brush_outline.setPen(pg.mkPen((255, 255, 255, 200), width=1, cosmetic=True))
        self.brush_outline.setZValue(10)
        self.brush_outline.setVisible(False)
        self.viewbox.addItem(self.brush_outline, ignoreBounds=True)
        self.scale_bar = ScaleBar(self.viewbox)

        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.slider_label = QtWidgets.QLabel()
        self.slider_label.setMinimumWidth(70)
        self.slider.valueChanged.connect(self._on_slider)
        slider_row = QtWidgets.QHBoxLayout()
        slider_row.setContentsMargins(6, 0, 6, 2)
        slider_row.addWidget(self.slider_label)
        slider_row.addWidget(self.slider, 1)
        self.slider_widget = QtWidgets.QWidget()
        self.slider_widget.setLayout(slider_row)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.slider_widget)
        self.slider_widget.setVisible(False)

        self.shape: tuple[int, int] | None = None
        self.stack_axis = "Z"
        self._labels: np.ndarray | None = None
        self._label_lut = label_lut([])
        self._raw: np.ndarray | None = None
        self.channel = 0
        self.percentiles = (1.0, 99.8)
        self.levels: tuple[float, float] = (0.0, 1.0)   # of the channel shown; (0, 255) for a composite
        self.manual_levels: tuple[Levels | None, ...] = ()  # per channel; None: from the percentiles
        self.channel_levels: list[Levels] = []              # what each channel is shown with now
        self._auto_levels: dict[tuple, Levels] = {}         # percentiles of the shown slice, per channel
        self._brush_radius: float | None = None
        self._outline_centre: tuple[float, float] | None = None  # pixel under the cursor, last seen
        self._label_opacity = 0.6
        self._labels_visible = True
        self.big: PyramidView | None = None  # the tiles of a big image, when one is shown
        self.big_prediction: PyramidView | None = None  # the tiles of its predicted labels
        self.view.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.view.viewport().installEventFilter(self)

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:
        # The cursor left the image: the status bar's pixel readout must not stay on the last pixel.
        if watched is self.view.viewport() and event.type() == QtCore.QEvent.Type.Leave:
            self.cursor_moved.emit(-1, -1)
        return False

    # ------------------------------------------------------------------ coordinates

    def scene_to_pixel(self, scene_pos: QtCore.QPointF) -> tuple[float, float]:
        """Pixel-centre coordinates (row, column) of a scene position."""
        point = self.viewbox.mapSceneToView(scene_pos)
        return point.y() - 0.5, point.x() - 0.5

    def viewport_to_pixel(self, pos: QtCore.QPointF | QtCore.QPoint) -> tuple[float, float]:
        return self.scene_to_pixel(self.view.mapToScene(QtCore.QPointF(pos).toPoint()))

    def pixel_to_viewport(self, y: float, x: float) -> QtCore.QPoint:
        """Viewport position of pixel centre (y, x): what tests click on."""
        scene = self.viewbox.mapViewToScene(QtCore.QPointF(x + 0.5, y + 0.5))
        return self.view.mapFromScene(scene)

    def _on_mouse_moved(self, scene_pos: QtCore.QPointF) -> None:
        if self.shape is None:
            return
        y, x = self.scene_to_pixel(scene_pos)
        iy, ix = int(round(y)), int(round(x))
        if 0 <= iy < self.shape[0] and 0 <= ix < self.shape[1]:
            self.cursor_moved.emit(iy, ix)
        else:
            self.cursor_moved.emit(-1, -1)
        self._place_outline(y, x)

    def set_brush_outline(self, radius: float | None) -> None:
        """Show a circle of ``radius`` pixels under the cursor (None hides it); a new size shows at once."""
        self._brush_radius = radius
        self.brush_outline.setVisible(radius is not None)
        if self._outline_centre is not None:
            self._place_outline(*self._outline_centre)

    def _place_outline(self, y: float, x: float) -> None:
        self._outline_centre = (y, x)
        if self._brush_radius is None:
            return
        r = max(self._brush_radius, 0.5)
        self.brush_outline.setRect(x + 0.5 - r, y + 0.5 - r, 2 * r, 2 * r)

    # ------------------------------------------------------------------ slices

    def set_slice_range(self, count: int, axis: str = "Z") -> None:
        self.stack_axis = axis or "Z"
        with QtCore.QSignalBlocker(self.slider):
            self.slider.setRange(0, max(count - 1, 0))
        self.slider_widget.setVisible(count > 1)
        self._update_slider_label()

    def set_slice(self, index: int) -> None:
        with QtCore.QSignalBlocker(self.slider):
            self.slider.setValue(index)
        self._update_slider_label()

    def _on_slider(self, value: int) -> None:
        self._update_slider_label()
        self.slice_requested.emit(value)

    def _update_slider_label(self) -> None:
        self.slider_label.setText(f"{self.stack_axis} {self.slider.value() + 1}/{self.slider.maximum() + 1}")

    # ------------------------------------------------------------------ raw image

    def set_raw(self, raw: np.ndarray | None, reset_view: bool = False) -> None:
        """Show a (C, Y, X) slice with the current channel choice and percentile contrast."""
        self._auto_levels.clear()
        big = raw if isinstance(raw, BigSlice) else None
        if self.big is not None and (big is None or big is not self.big.raw):
            self.show_big_prediction(None)
            self.big.close()
            self.big = None
            self.label_tiles.pop((-1, -1), None)
            self.raw_item.resetTransform()
        if big is not None:
            raw = big.overview  # levels, composite and the base layer come from the overview
        self._raw = raw
        if raw is None:
            self.raw_item.clear()
            self.shape = None
            return
        shape = big.shape[1:] if big is not None else raw.shape[1:]
        reset_view = reset_view or shape != self.shape
        self.shape = shape
        if big is not None and self.big is None:
            self._show_big(big)
        self._render_raw()
        if reset_view:
            self.reset_view()

    def _show_big(self, big: BigSlice) -> None:
        """Show a big slice from its pyramid: the labels' tiles go, one sampled overlay comes."""
        self.set_labels(None)
        self.big = PyramidView(self, big, self)
        item = self.big.labels.item
        item.setOpacity(self._label_opacity)
        item.setVisible(self._labels_visible)
        self.label_tiles[(-1, -1)] = item  # follows colours, opacity and visibility like a tile

    def reset_view(self) -> None:
        """Zoom and pan so that the whole image fits the view."""
        if self.shape is not None:
            self.viewbox.setRange(QtCore.QRectF(0, 0, self.shape[1], self.shape[0]), padding=0.02)

    def set_channel(self, channel: int) -> None:
        self.channel = channel
        self._render_raw()

    def set_percentiles(self, low: float, high: float) -> None:
        self.percentiles = (float(low), float(max(high, low + 0.01)))
        self._render_raw()

    def set_levels(self, levels: tuple[Levels | None, ...]) -> None:
        """Per-channel display levels set by the person (None where automatic, from the percentiles)."""
        self.manual_levels = tuple(levels)
        self._render_raw()

    def _levels_of(self, raw: np.ndarray, c: int) -> Levels:
        if c < len(self.manual_levels) and self.manual_levels[c] is not None:
            return self.manual_levels[c]
        key = (c, self.percentiles)
        if key not in self._auto_levels:  # computed once per slice, not on each change of another channel
            rgb = is_rgb(raw.shape[0], raw.dtype)  # a photograph shows as it is
            self._auto_levels[key] = (0.0, 255.0) if rgb else percentile_levels(raw[c], *self.percentiles)
        return self._auto_levels[key]

    def _render_raw(self) -> None:
        raw = self._raw
        if raw is None:
            return
        self.channel_levels = [self._levels_of(raw, c) for c in range(raw.shape[0])]
        image, self.levels = self.render_block(raw)
        self.raw_item.setImage(image, levels=self.levels, autoLevels=False)
        if self.big is not None:
            self.raw_item.setRect(QtCore.QRectF(0, 0, self.shape[1], self.shape[0]))  # the overview spans the image
            self.big.restyle()
            self.big.schedule()

    def render_block(self, raw: np.ndarray) -> tuple[np.ndarray, Levels]:
        """A (C, Y, X) block as shown now (channel or composite, :attr:`channel_levels`): image and levels."""
        channel = self.channel if self.channel < raw.shape[0] else 0
        if channel == COMPOSITE and raw.shape[0] > 1:
            return composite_rgb(raw, self.channel_levels, channel_colors(raw.shape[0], raw.dtype)), (0.0, 255.0)
        plane = raw[max(channel, 0)]
        if plane.dtype not in (np.uint8, np.uint16, np.float32):
            plane = plane.astype(np.float32)
        return np.ascontiguousarray(plane), self.channel_levels[max(channel, 0)]

    # ------------------------------------------------------------------ labels

    @property
    def label_lut_table(self) -> np.ndarray:
        """The (256, 4) colour table of the labels."""
        return self._label_lut

    def set_label_colors(self, colors: list[tuple[int, int, int]]) -> None:
        self._label_lut = label_lut(colors)
        for item in self.label_tiles.values():
            item.setLookupTable(self._label_lut)

    def set_label_opacity(self, opacity: float) -> None:
        self._label_opacity = float(opacity)
        for item in self.label_tiles.values():
            item.setOpacity(self._label_opacity)

    def set_labels_visible(self, visible: bool) -> None:
        self._labels_visible = bool(visible)
        for item in self.label_tiles.values():
            item.setVisible(self._labels_visible)

    def set_labels(self, labels: np.ndarray | None, painted=None) -> None:
        """Show a (Y, X) label slice; the canvas keeps a reference and re-reads it on :meth:`update_labels`.

        ``painted`` (a big image's) says which boxes of the slice hold labels: only those are read.
        """
        self._labels = labels
        if self.big is not None:
            self.big.labels.set_plane(labels, painted)
            return
        if labels is None:
            for item in self.label_tiles.values():
                self.viewbox.removeItem(item)
            self.label_tiles.clear()
            return
        height, width = labels.shape
        wanted = {(ty, tx) for ty in range(0, height, TILE) for tx in range(0, width, TILE)}
        if set(self.label_tiles) != wanted:
            for item in self.label_tiles.values():
                self.viewbox.removeItem(item)
            self.label_tiles.clear()
            for ty, tx in sorted(wanted):
                item = pg.ImageItem(axisOrder="row-major")
                item.setZValue(2)
                item.setPos(tx, ty)
                item.setOpacity(self._label_opacity)
                item.setVisible(self._labels_visible)
                self.viewbox.addItem(item)
                self.label_tiles[(ty, tx)] = item
        self.update_labels(None)

    def update_labels(self, box: tuple[int, int, int, int] | None) -> int:
        """Re-render the label tiles that ``box`` touches (all when None); returns how many."""
        labels = self._labels
        if labels is None:
            return 0
        if self.big is not None:
            self.big.labels.update(box)
            return 1
        height, width = labels.shape
        y0, y1, x0, x1 = box if box is not None else (0, height, 0, width)
        count = 0
        for (ty, tx), item in self.label_tiles.items():
            if ty >= y1 or ty + TILE <= y0 or tx >= x1 or tx + TILE <= x0:
                continue
            tile = np.ascontiguousarray(labels[ty : ty + TILE, tx : tx + TILE])
            item.setImage(tile, lut=self._label_lut, levels=(0, 255), autoLevels=False)
            count += 1
        return count

    # ------------------------------------------------------------------ prediction overlay

    def set_prediction(self, image: np.ndarray | None, lut: np.ndarray | None = None) -> None:
        """Show a (Y, X) uint8 prediction image through ``lut`` (None hides the overlay)."""
        if image is None:
            self.prediction_item.clear()
            self.prediction_item.setVisible(False)
            return
        self.prediction_item.setVisible(True)
        self.prediction_item.setImage(np.ascontiguousarray(image), lut=lut, levels=(0, 255), autoLevels=False)

    def set_prediction_opacity(self, opacity: float) -> None:
        self.prediction_item.setOpacity(float(opacity))
        if self.big_prediction is not None:
            self.big_prediction.set_opacity(opacity)

    def show_big_prediction(self, path: str | None) -> None:
        """Show a big image's predicted labels (an OME-Zarr, tile by tile from its pyramid); None: take them away."""
        if self.big_prediction is not None:
            self.big_prediction.source.close()  # closes the layer too
            self.big_prediction = None
        if path is None or self.big is None:
            return
        lut = self._label_lut
        layer = PyramidView(self, BigSlice(open_pyramid(path), self.big.raw.slice_index), self,
                            render=lambda block: (np.ascontiguousarray(block[0]), (0, 255), lut), z=1.0)
        layer.set_opacity(self.prediction_item.opacity())
        self.big.source.on_close(layer.source.close)  # the image closes: its prediction's reader too
        self.big_prediction = layer
        layer.schedule()

    # ------------------------------------------------------------------ drag and drop

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)
