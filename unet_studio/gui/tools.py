"""Painting tools: mouse and keyboard on the canvas become label strokes in the session.

Left button paints with the active tool; a press-move-release is one stroke (one undo step), and each
move paints the segment from the previous cursor position, so fast moves leave no gaps. The middle
button, or the left button with Space or Ctrl held, pans (pyqtgraph's ViewBox does it); the wheel and
the right button zoom. ``[`` and ``]`` change the brush size, number keys pick the class (shortcuts
live on the main window's actions).
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui

from .canvas import ImageCanvas
from .session import Session
from .view_state import ViewState

TOOLS = ("brush", "eraser", "fill", "picker")
TOOL_KEYS = {"brush": "B", "eraser": "E", "fill": "F", "picker": "L"}
MIN_RADIUS, MAX_RADIUS = 0.5, 200.0


class PaintTools(QtCore.QObject):
    """The active tool and brush size; an event filter on the canvas viewport that paints."""

    tool_changed = QtCore.Signal(str)
    brush_size_changed = QtCore.Signal(int)   # diameter in pixels
    picked = QtCore.Signal(int)               # class index picked with the picker
    message = QtCore.Signal(str)              # a note for the status bar

    def __init__(self, session: Session, canvas: ImageCanvas, view: ViewState,
                 parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.canvas = canvas
        self.view = view
        self.tool = "brush"
        self.brush_size = 5
        self.enabled = True
        self._last: tuple[float, float] | None = None
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

    def grow_brush(self) -> None:
        self.set_brush_size(self.brush_size + max(1, self.brush_size // 5))

    def shrink_brush(self) -> None:
        self.set_brush_size(self.brush_size - max(1, self.brush_size // 6))

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
            self.session.editing.fill(y, x, self._value())
        elif self.tool == "picker":
            value = self.session.editing.label_at(int(round(y)), int(round(x)))
            if value > 0:
                self.session.set_active_class(value - 1)
                self.picked.emit(value - 1)

    def move(self, y: float, x: float) -> None:
        if self._last is None:
            return
        self.session.editing.paint_line(self._last, (y, x), self.radius, self._value())
        self._last = (y, x)

    def release(self) -> None:
        if self._last is not None:
            self._last = None
            self.session.editing.end_stroke()

    # ------------------------------------------------------------------ events

    def _pans(self, event: QtGui.QMouseEvent) -> bool:
        ctrl = bool(event.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier)
        return self._space_down or ctrl

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:
        kind = event.type()
        if kind in (QtCore.QEvent.Type.KeyPress, QtCore.QEvent.Type.KeyRelease):
            if event.key() == QtCore.Qt.Key.Key_Space and not event.isAutoRepeat():
                self._space_down = kind == QtCore.QEvent.Type.KeyPress
            return False
        if watched is not self.canvas.view.viewport():
            return False
        if kind == QtCore.QEvent.Type.MouseButtonPress:
            if (event.button() == QtCore.Qt.MouseButton.LeftButton and self.enabled
                    and self.session.current is not None and not self._pans(event)):
                self.canvas.view.setFocus()
                self.press(*self.canvas.viewport_to_pixel(event.position()))
                return True
        elif kind == QtCore.QEvent.Type.MouseMove:
            if self._last is not None:
                self.move(*self.canvas.viewport_to_pixel(event.position()))
                # Let pyqtgraph see hover moves too (status bar, brush outline).
                return False
        elif kind == QtCore.QEvent.Type.MouseButtonRelease:
            if event.button() == QtCore.Qt.MouseButton.LeftButton and self._last is not None:
                self.move(*self.canvas.viewport_to_pixel(event.position()))
                self.release()
                return True
        return False
