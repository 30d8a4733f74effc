"""Painting tools: mouse and keyboard on the canvas become label strokes in the session.

Left button paints with the active tool; a press-move-release is one stroke (one undo step), and each
move paints the segment from the previous cursor position, so fast moves leave no gaps. The middle
button, or the left button with Space or Ctrl held, pans (pyqtgraph's ViewBox does it); the wheel and
the right button zoom. The brush size changes with Ctrl+wheel, with Shift+left drag (to the right is
larger, as in napari and Photoshop) and with ``[`` and ``]`` (x/÷ 1.25 per press); number keys pick the
class (shortcuts live on the main window's actions).

Fill, on an unlabelled pixel, fills the connected unlabelled region whose intensity is within a tolerance
of the clicked pixel's (a percentage of the display range, like the magic wand of paint programs and
Fiji's wand); on a label it recolours that connected label. A fill of more than half the slice asks first.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from .canvas import ImageCanvas
from .session import Session
from .view_state import COMPOSITE, ViewState

TOOLS = ("brush", "eraser", "fill", "picker")
TOOL_KEYS = {"brush": "B", "eraser": "E", "fill": "F", "picker": "L"}
MIN_RADIUS, MAX_RADIUS = 0.5, 200.0
#: ``[`` and ``]`` and one wheel notch change the brush size by this factor (at least 1 px).
SIZE_STEP = 1.25
#: A Shift+drag this many screen pixels to the right doubles the brush size (to the left halves it).
DRAG_PIXELS_PER_DOUBLING = 100.0
#: Default fill tolerance, in percent of the display range; 100 = intensity ignored (labels only).
DEFAULT_FILL_TOLERANCE = 25
#: A fill of more than this fraction of the slice asks for confirmation first.
LARGE_FILL_FRACTION = 0.5


def ask_yes_no(parent: QtWidgets.QWidget | None) -> Callable[[str, str], bool]:
    """A confirmation function ``(title, text) -> bool`` that asks with a modal message box."""
    buttons = QtWidgets.QMessageBox.StandardButton

    def confirm(title: str, text: str) -> bool:
        return QtWidgets.QMessageBox.question(parent, title, text, buttons.Yes | buttons.Cancel,
                                              buttons.Cancel) == buttons.Yes

    return confirm


class PaintTools(QtCore.QObject):
    """The active tool, brush size and fill tolerance; an event filter on the canvas viewport that paints.

    ``confirm`` (``(title, text) -> bool``) is asked before a fill of more than half the slice; tests and
    the main window replace it.
    """

    tool_changed = QtCore.Signal(str)
    brush_size_changed = QtCore.Signal(int)   # diameter in pixels
    fill_tolerance_changed = QtCore.Signal(int)  # percent of the display range
    picked = QtCore.Signal(int)               # class index picked with the picker
    picked_at = QtCore.Signal(float, float)   # pixel (y, x) clicked with the picker (objects' measurements)
    message = QtCore.Signal(str)              # a note for the status bar

    def __init__(self, session: Session, canvas: ImageCanvas, view: ViewState,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.canvas = canvas
        self.view = view
        self.tool = "brush"
        self.brush_size = 5
        self.fill_tolerance = DEFAULT_FILL_TOLERANCE
        self.enabled = True
        self.confirm: Callable[[str, str], bool] = ask_yes_no(canvas)
        self._last: tuple[float, float] | None = None
        self._size_drag: tuple[float, int] | None = None  # (start x on screen, size at the start)
        self._space_down = False
        canvas.view.viewport().installEventFilter(self)
        canvas.view.installEventFilter(self)
        canvas.view.viewport().setMouseTracking(True)
        self._update_outline()

    # ------------------------------------------------------------------ settings

    @property
    def radius(self) -> float:
        return max(self.brush_size / 2.0, MIN_RADIUS)

    def set_tool(self, tool: str) -> None:
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        if tool != self.tool:
            self.tool = tool
            self._update_outline()
            self.tool_changed.emit(tool)

    def set_brush_size(self, size: int) -> None:
        size = int(min(max(size, 1), 2 * MAX_RADIUS))
        if size != self.brush_size:
            self.brush_size = size
            self._update_outline()
            self.brush_size_changed.emit(size)

    def step_brush(self, steps: float) -> None:
        """Scale the brush size by ``SIZE_STEP ** steps`` (at least 1 px per step), and say the new size."""
        scaled = int(round(self.brush_size * SIZE_STEP ** steps))
        if steps > 0:
            scaled = max(scaled, self.brush_size + 1)
        elif steps < 0:
            scaled = min(scaled, self.brush_size - 1)
        self.set_brush_size(scaled)
        self.message.emit(f"Brush size {self.brush_size} px")

    def grow_brush(self) -> None:
        self.step_brush(1)

    def shrink_brush(self) -> None:
        self.step_brush(-1)

    def set_fill_tolerance(self, percent: int) -> None:
        """Fill tolerance in percent of the display range (0: the same value only; 100: intensity ignored)."""
        percent = int(min(max(percent, 0), 100))
        if percent != self.fill_tolerance:
            self.fill_tolerance = percent
            self.fill_tolerance_changed.emit(percent)

    def _update_outline(self) -> None:
        painting = self.tool in ("brush", "eraser")
        self.canvas.set_brush_outline(self.radius if painting else None)

    # ------------------------------------------------------------------ strokes (pixel coordinates)

    def _value(self) -> int:
        return 0 if self.tool == "eraser" else self.session.active_class + 1

    def _show_hidden_labels(self) -> None:
        """Painting on hidden labels would change pixels nobody sees: show the labels first, and say so."""
        if not self.view.labels_visible:
            self.view.update(labels_visible=True)
            self.message.emit("Labels were hidden: shown again so that you see what you paint")

    def press(self, y: float, x: float) -> None:
        if self.tool != "picker":
            self._show_hidden_labels()
        if self.tool in ("brush", "eraser"):
            self.session.editing.begin_stroke()
            self._last = (y, x)
            self.session.editing.paint_line((y, x), (y, x), self.radius, self._value())
        elif self.tool == "fill":
            self.fill(y, x)
        elif self.tool == "picker":
            value = self.session.editing.label_at(int(round(y)), int(round(x)))
            if value > 0:
                self.session.set_active_class(value - 1)
                self.picked.emit(value - 1)
            self.picked_at.emit(y, x)

    def move(self, y: float, x: float) -> None:
        if self._last is None:
            return
        self.session.editing.paint_line(self._last, (y, x), self.radius, self._value())
        self._last = (y, x)

    def release(self) -> None:
        if self._last is not None:
            self._last = None
            self.session.editing.end_stroke()

    # ------------------------------------------------------------------ fill

    def fill(self, y: float, x: float) -> bool:
        """Fill at pixel (y, x) with the active class (see the module text); True when labels changed."""
        editing = self.session.editing
        if getattr(self.session.current.stack, "is_big", False):  # a flood over 40000 x 40000 pixels: not yet
            self.message.emit("Fill is not available on images shown from their pyramid: paint with the brush")
            return False
        seed_label = editing.label_at(int(round(y)), int(round(x)))
        intensity, tolerance = self._fill_intensity() if seed_label == 0 else (None, None)
        region = editing.fill_region(y, x, self._value(), intensity, tolerance)
        if region is None:
            return False
        box, mask = region
        filled = int(np.count_nonzero(mask))
        total = int(np.prod(self.session.current.labels.shape[1:]))
        if filled > LARGE_FILL_FRACTION * total:
            share = f"{100.0 * filled / total:.0f}%"
            if not self.confirm("Fill most of the slice?",
                                f"This fill would label {filled} pixels, {share} of the slice. Fill anyway?\n\n"
                                "To fill less, lower the fill tolerance in the tool bar or paint a border "
                                "around the region first."):
                self.message.emit(f"Fill cancelled: it would have covered {share} of the slice "
                                  "(lower the tolerance or paint a border first)")
                return False
        editing.fill_mask(box, mask, self._value())
        self.message.emit(f"Filled {filled} pixels")
        return True

    def _fill_intensity(self) -> tuple[np.ndarray | None, list[float] | None]:
        """The slice's pixels as shown and the tolerance per channel (None: intensity is ignored)."""
        if self.fill_tolerance >= 100:
            return None, None
        raw = self.session.slices.raw()
        fraction = self.fill_tolerance / 100.0
        channel = self.canvas.channel
        shown = list(self.canvas.channel_levels)  # the display range of each channel, as on screen
        if len(shown) != raw.shape[0]:
            shown = [self.canvas.levels] * raw.shape[0]
        if channel == COMPOSITE and raw.shape[0] > 1:
            channels = list(range(raw.shape[0]))
        else:
            channels = [channel if 0 <= channel < raw.shape[0] else 0]
        ranges = [shown[c] for c in channels]
        tolerance = [fraction * (hi - lo) for lo, hi in ranges]
        return raw[channels], tolerance

    # ------------------------------------------------------------------ events

    def _pans(self, event: QtGui.QMouseEvent) -> bool:
        ctrl = bool(event.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier)
        return self._space_down or ctrl

    def _drag_size(self, x: float) -> None:
        start_x, start_size = self._size_drag
        self.set_brush_size(int(round(start_size * 2.0 ** ((x - start_x) / DRAG_PIXELS_PER_DOUBLING))))
        self.message.emit(f"Brush size {self.brush_size} px")

    def _wheel(self, event: QtGui.QWheelEvent) -> bool:
        if not event.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier:
            return False  # the plain wheel zooms (pyqtgraph)
        notches = event.angleDelta().y() / 120.0
        if notches:
            self.step_brush(notches)
        return True

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:
        kind = event.type()
        if kind in (QtCore.QEvent.Type.KeyPress, QtCore.QEvent.Type.KeyRelease):
            if event.key() == QtCore.Qt.Key.Key_Space and not event.isAutoRepeat():
                self._space_down = kind == QtCore.QEvent.Type.KeyPress
            return False
        if watched is not self.canvas.view.viewport():
            return False
        if kind == QtCore.QEvent.Type.Wheel:
            return self._wheel(event)
        if kind == QtCore.QEvent.Type.MouseButtonPress:
            return self._mouse_press(event)
        if kind == QtCore.QEvent.Type.MouseMove:
            if self._size_drag is not None:
                self._drag_size(event.position().x())
                return False  # pyqtgraph still moves the outline with the cursor
            if self._last is not None:
                self.move(*self.canvas.viewport_to_pixel(event.position()))
                # Let pyqtgraph see hover moves too (status bar, brush outline).
                return False
        elif kind == QtCore.QEvent.Type.MouseButtonRelease and event.button() == QtCore.Qt.MouseButton.LeftButton:
            if self._size_drag is not None:
                self._drag_size(event.position().x())
                self._size_drag = None
                return True
            if self._last is not None:
                self.move(*self.canvas.viewport_to_pixel(event.position()))
                self.release()
                return True
        return False

    def _mouse_press(self, event: QtGui.QMouseEvent) -> bool:
        if (event.button() != QtCore.Qt.MouseButton.LeftButton or not self.enabled
                or self.session.current is None or self._pans(event)):
            return False
        self.canvas.view.setFocus()
        if event.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier and self.tool in ("brush", "eraser"):
            self._size_drag = (event.position().x(), self.brush_size)
            self.message.emit(f"Brush size {self.brush_size} px: drag right for larger, left for smaller")
            return True
        self.press(*self.canvas.viewport_to_pixel(event.position()))
        return True
