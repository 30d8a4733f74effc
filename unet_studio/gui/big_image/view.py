"""The canvas of a big image: its overview, tiles of the level that fits the view, and a label overlay.

:class:`PyramidView` listens to the view box: after each zoom or pan (coalesced by a zero-delay timer) it
picks the level whose pixels are about one screen pixel (:meth:`PyramidSource.level_for`), places the
tiles of the visible region it has, and asks a small thread pool for the others; a tile arrives through a
queued signal and is drawn on the GUI thread, which never waits on a read. Tiles of the level shown before
stay underneath until the new level covers the view (no flicker to the overview). The overview (the
coarsest level, the canvas's raw item, scaled to the image) is always there below.

:class:`LabelOverlay` shows the labels of the visible region (with a margin) sampled every ``d`` pixels,
``d`` the full-resolution pixels per screen pixel: one image item whatever the image size, re-sampled
when the view leaves the sampled region or the zoom changes, and patched in place on a stroke.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from ...core.errors import UNetStudioError
from .source import BigSlice

log = logging.getLogger(__name__)

__all__ = ["LabelOverlay", "PyramidView", "TILE_PX"]

TILE_PX = 512
"""Side of a display tile, in pixels of its level."""

SPARE_ITEMS = 48
"""Hidden tile items kept for reuse."""

CACHE_BYTES = 256 * 2**20
"""Raw tiles kept in memory (panning back reads nothing)."""


class PyramidView(QtCore.QObject):
    """Tiles of a big slice on a canvas (see the module's docstring).

    Parameters
    ----------
    canvas : ImageCanvas
        Gives the view box and renders a raw block as shown (``render_block``).
    raw : BigSlice
        The slice shown.
    render : callable, optional
        ``(C, Y, X) block -> (image, levels, lut)``; by default the canvas's rendering of raw pixels (and
        the overview is the canvas's raw item, so the coarsest level is never tiled). Given (a prediction's
        labels), every level is tiled and no label overlay is made.
    z : float
        Height of the tiles in the scene (raw 0.5, predictions 1, labels 2).
    """

    tile_ready = QtCore.Signal(object, object)  # key (s, level, ty, tx), (C, Y, X) block or an error text
    level_shown = QtCore.Signal(int)

    def __init__(self, canvas, raw: BigSlice, parent: QtCore.QObject | None = None, render=None,
                 z: float = 0.5) -> None:
        super().__init__(parent)
        self.render = render or (lambda block: (*canvas.render_block(block), None))
        self.z, self.opacity = z, 1.0
        self.top_level = raw.overview_level if render is None else raw.overview_level + 1
        self.canvas, self.viewbox, self.raw = canvas, canvas.viewbox, raw
        self.source = raw.source
        self.items: dict[tuple, pg.ImageItem] = {}
        self._spare: list[pg.ImageItem] = []  # hidden items, reused for the next tiles
        self.cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_bytes = 0
        self.pending: set[tuple] = set()
        self.wanted: set[tuple] = set()
        self.level = raw.overview_level
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="unet-studio-tiles")
        self.source.on_close(self.close)
        self._timer = QtCore.QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.update_tiles)
        self.tile_ready.connect(self._on_tile, QtCore.Qt.ConnectionType.QueuedConnection)
        self.viewbox.sigRangeChanged.connect(self.schedule)
        self.labels = LabelOverlay(canvas) if render is None else None
        self._closed = False

    # ------------------------------------------------------------------ view changes

    def schedule(self, *_args) -> None:
        """Update after the current burst of range changes (one update per event-loop pass)."""
        if not self._closed:
            self._timer.start()

    def visible(self) -> tuple[int, int, int, int]:
        """``(y0, y1, x0, x1)`` of the full-resolution pixels in view, clipped to the image."""
        (x0, x1), (y0, y1) = self.viewbox.viewRange()
        height, width = self.raw.shape[1:]
        return (max(0, int(y0)), min(height, int(math.ceil(y1))), max(0, int(x0)), min(width, int(math.ceil(x1))))

    def pixels_per_screen_pixel(self) -> float:
        size = self.viewbox.viewPixelSize()
        return float(max(size[0], 1e-6))

    def update_tiles(self) -> None:
        """Place the tiles of the level that fits the view; ask for the missing ones."""
        if self._closed:
            return
        density = self.pixels_per_screen_pixel()
        if self.labels is not None:
            self.labels.follow(self.visible(), density)
        level = self.source.level_for(density)
        y0, y1, x0, x1 = self.visible()
        if level >= self.top_level or y1 <= y0 or x1 <= x0:
            self.wanted = set()
            self._drop(lambda key: True)
            self._set_level(self.raw.overview_level)
            return
        factor = self.source.factors[level]
        span = TILE_PX * factor
        s = self.raw.slice_index
        self.wanted = {(s, level, ty, tx) for ty in range(y0 // span, (y1 - 1) // span + 1)
                       for tx in range(x0 // span, (x1 - 1) // span + 1)}
        for key in sorted(self.wanted):
            if key in self.items:
                continue
            if key in self.cache:
                self.cache.move_to_end(key)
                self._place(key, self.cache[key])
            elif key not in self.pending:
                self.pending.add(key)
                self._executor.submit(self._load, key)
        self._set_level(level)
        self._tidy()

    def _set_level(self, level: int) -> None:
        if level != self.level:
            self.level = level
            self.level_shown.emit(level)

    # ------------------------------------------------------------------ tiles

    def _load(self, key: tuple) -> None:
        """Read one tile (a loader thread); skipped when the view moved on before it started."""
        if self._closed or key not in self.wanted:
            self.pending.discard(key)
            return
        s, level, ty, tx = key
        try:
            block = self.source.region(level, ty * TILE_PX, (ty + 1) * TILE_PX, tx * TILE_PX, (tx + 1) * TILE_PX, s)
        except UNetStudioError as exc:
            block = str(exc)
        except Exception as exc:  # noqa: BLE001 - a loader thread must report, never die silently
            log.exception("reading tile %s failed", key)
            block = f"reading a tile failed ({type(exc).__name__}: {exc})"
        try:
            self.tile_ready.emit(key, block)
        except RuntimeError:  # the view was deleted meanwhile
            pass

    def _on_tile(self, key: tuple, block) -> None:
        self.pending.discard(key)
        if self._closed:
            return
        if isinstance(block, str):
            log.warning("%s", block)
            return
        self._remember(key, block)
        if key in self.wanted and key not in self.items:
            self._place(key, block)
            self._tidy()

    def _place(self, key: tuple, block: np.ndarray) -> None:
        _, level, ty, tx = key
        factor = self.source.factors[level]
        # Items are reused: adding one to the view box costs more than drawing its 512 x 512 pixels.
        item = self._spare.pop() if self._spare else None
        if item is None:
            item = pg.ImageItem(axisOrder="row-major")
            self.viewbox.addItem(item, ignoreBounds=True)
        item.setZValue(self.z - level * 0.01)  # finer levels above coarser ones
        item.setOpacity(self.opacity)
        image, levels, lut = self.render(block)
        item.setImage(image, levels=levels, lut=lut, autoLevels=False)
        height, width = block.shape[1:]
        span = TILE_PX * factor
        item.setRect(QtCore.QRectF(tx * span, ty * span, width * factor, height * factor))
        item.setVisible(True)
        self.items[key] = item

    def _remember(self, key: tuple, block: np.ndarray) -> None:
        self.cache[key] = block
        self._cache_bytes += block.nbytes
        while self._cache_bytes > CACHE_BYTES and len(self.cache) > 1:
            _, dropped = self.cache.popitem(last=False)
            self._cache_bytes -= dropped.nbytes

    def _tidy(self) -> None:
        """Drop tiles of other levels once the wanted ones cover the view."""
        if all(key in self.items for key in self.wanted):
            self._drop(lambda key: key not in self.wanted)

    def _drop(self, which) -> None:
        for key in [key for key in self.items if which(key)]:
            item = self.items.pop(key)
            item.setVisible(False)
            if len(self._spare) < SPARE_ITEMS and not self._closed:
                self._spare.append(item)
            else:
                self.viewbox.removeItem(item)

    def restyle(self) -> None:
        """Render the placed tiles again (channel or contrast changed)."""
        for key, item in self.items.items():
            if key in self.cache:
                image, levels, lut = self.render(self.cache[key])
                item.setImage(image, levels=levels, lut=lut, autoLevels=False)

    def set_opacity(self, opacity: float) -> None:
        self.opacity = float(opacity)
        for item in self.items.values():
            item.setOpacity(self.opacity)

    @property
    def settled(self) -> bool:
        """No update is due and every wanted tile is placed (what a test waits for)."""
        return not self._timer.isActive() and not self.pending and all(key in self.items for key in self.wanted)

    def tiles_shown(self) -> list[tuple]:
        return sorted(self.items)

    def close(self) -> None:
        """Stop loading and take the tiles and the label overlay off the canvas."""
        if self._closed:
            return
        self._closed = True
        self._timer.stop()
        try:
            self.viewbox.sigRangeChanged.disconnect(self.schedule)
        except (RuntimeError, TypeError):
            pass
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._drop(lambda key: True)
        while self._spare:
            self.viewbox.removeItem(self._spare.pop())
        if self.labels is not None:
            self.labels.close()


class LabelOverlay:
    """The labels of a big slice as one image item at about the screen's resolution (module docstring).

    Each displayed pixel is the largest label of the ``step x step`` pixels it covers, so that a thin
    stroke stays visible zoomed out; only the chunks that hold labels (``painted``) are read.
    """

    def __init__(self, canvas) -> None:
        self.canvas = canvas
        self.item = pg.ImageItem(axisOrder="row-major")
        self.item.setZValue(2)
        canvas.viewbox.addItem(self.item, ignoreBounds=True)
        self.plane: np.ndarray | None = None
        self.painted = None  # callable -> boxes (y0, y1, x0, x1) that hold labels; None: all of the plane
        self.region: tuple[int, int, int, int] | None = None  # y0, y1, x0, x1 shown (full resolution)
        self.step = 1
        self.image: np.ndarray | None = None
        self._visible = (0, 0, 0, 0)
        self._density = 1.0

    def set_plane(self, plane: np.ndarray | None, painted=None) -> None:
        self.plane, self.painted = plane, painted
        self.region = None
        self.follow(self._visible, self._density)

    def follow(self, visible: tuple[int, int, int, int], density: float) -> None:
        """Render again when ``visible`` leaves the rendered region or the zoom changed."""
        self._visible, self._density = visible, density
        if self.plane is None:
            self.image = None
            self.item.clear()
            return
        step = max(1, int(density))
        y0, y1, x0, x1 = visible
        inside = self.region is not None and self.region[0] <= y0 and self.region[1] >= y1 \
            and self.region[2] <= x0 and self.region[3] >= x1
        if inside and step == self.step:
            return
        height, width = self.plane.shape
        my, mx = (y1 - y0) // 4, (x1 - x0) // 4  # a margin: small pans need no new rendering
        ry0, rx0 = max(0, (y0 - my) // step * step), max(0, (x0 - mx) // step * step)
        self.region, self.step = (ry0, min(height, y1 + my), rx0, min(width, x1 + mx)), step
        self.update(None)

    def update(self, box) -> None:
        """Render the labels of ``box`` (all of the region when None) and show them."""
        if self.plane is None or self.region is None:
            return
        ry0, ry1, rx0, rx1 = self.region
        if ry1 <= ry0 or rx1 <= rx0:
            self.image = None
            self.item.clear()
            return
        step = self.step
        if box is None or self.image is None:
            self.image = np.zeros((-(-(ry1 - ry0) // step), -(-(rx1 - rx0) // step)), self.plane.dtype)
            boxes = self.painted() if self.painted is not None else [(ry0, ry1, rx0, rx1)]
            for each in boxes:
                self._pool(each)
            self.item.setImage(self.image, lut=self.canvas.label_lut_table, levels=(0, 255), autoLevels=False)
            h, w = self.image.shape
            self.item.setRect(QtCore.QRectF(rx0, ry0, w * step, h * step))
            return
        if self._pool(box):
            self.item.setImage(self.image, lut=self.canvas.label_lut_table, levels=(0, 255), autoLevels=False)

    def _pool(self, box) -> bool:
        """Set the displayed pixels that ``box`` touches to the largest label each covers; False when none."""
        ry0, ry1, rx0, rx1 = self.region
        step, (rows, cols) = self.step, self.image.shape
        r0, r1 = max(0, (box[0] - ry0) // step), min(rows, -(-(box[1] - ry0) // step))
        c0, c1 = max(0, (box[2] - rx0) // step), min(cols, -(-(box[3] - rx0) // step))
        if r1 <= r0 or c1 <= c0:
            return False
        block = self.plane[ry0 + r0 * step : ry0 + r1 * step, rx0 + c0 * step : rx0 + c1 * step]
        if step > 1:
            padded = np.zeros(((r1 - r0) * step, (c1 - c0) * step), block.dtype)
            padded[: block.shape[0], : block.shape[1]] = block
            block = padded.reshape(r1 - r0, step, c1 - c0, step).max(axis=(1, 3))
        self.image[r0:r1, c0:c1] = block
        return True

    def close(self) -> None:
        self.canvas.viewbox.removeItem(self.item)
        self.plane = None
