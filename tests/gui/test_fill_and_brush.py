"""Fill bounded by intensity and labels, with a confirmation for big fills; brush size by Ctrl+wheel,
Shift+drag and ``[``/``]`` (issue 17, items 4 and 13). Real mouse, wheel and key events on the real window."""

from __future__ import annotations

import numpy as np
import tifffile
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtTest import QTest

from gui_helpers import labels_of, mouse_stroke

Button = QtWidgets.QMessageBox.StandardButton
Key = QtCore.Qt.Key
LARGE_FILL = "Fill most of the slice?"


def nucleus_seed(image: np.ndarray) -> tuple[int, int]:
    """The brightest pixel of the smoothed image: the middle of a nucleus."""
    from scipy import ndimage as ndi

    smooth = ndi.gaussian_filter(image.astype(np.float32), 2)
    return tuple(int(v) for v in np.unravel_index(np.argmax(smooth), smooth.shape))


def test_fill_on_a_nucleus_fills_that_nucleus_not_the_slice(window, sample_512):
    window.open_image(sample_512)
    image = tifffile.imread(sample_512)
    y, x = nucleus_seed(image)
    window.tools.set_tool("fill")
    window.session.set_active_class(1)
    mouse_stroke(window, [(y, x)])
    filled = labels_of(window) == 2
    assert filled[y, x]
    assert 50 < filled.sum() < 0.05 * filled.size, filled.sum()  # one nucleus, not every unlabelled pixel
    assert window.asked == []  # a small fill asks nothing
    # Every filled pixel is bright: the fill followed the nucleus, not the dark background.
    assert np.percentile(image[filled], 5) > np.percentile(image, 60)
    assert window.session.current.labels.can_undo and "Filled" in window.statusBar().currentMessage()


def test_fill_stops_at_labels_of_other_classes(window, tmp_path):
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, np.full((200, 200), 100, np.uint8))  # nothing to tell apart by intensity
    window.open_image(path)
    window.tools.set_brush_size(3)
    window.session.set_active_class(0)
    mouse_stroke(window, [(40, 40), (40, 90), (90, 90), (90, 40), (40, 40)])  # a closed square of class 1
    window.tools.set_tool("fill")
    window.session.set_active_class(1)
    mouse_stroke(window, [(65, 65)])
    labels = labels_of(window)
    assert (labels[43:88, 43:88] == 2).all() and (labels[40, 40:90] == 1).all() and labels[120, 120] == 0


def test_a_fill_of_most_of_the_slice_asks_first(window, tmp_path):
    path = tmp_path / "flat.tif"
    tifffile.imwrite(path, np.full((200, 200), 100, np.uint8))
    window.open_image(path)
    window.tools.set_tool("fill")
    window.session.set_active_class(0)
    window.answers[LARGE_FILL] = Button.Cancel
    mouse_stroke(window, [(100, 100)])
    assert window.asked == [LARGE_FILL]
    assert labels_of(window).max() == 0 and not window.session.current.labels.can_undo
    assert "Fill cancelled" in window.statusBar().currentMessage()
    window.answers[LARGE_FILL] = Button.Yes
    mouse_stroke(window, [(100, 100)])
    assert (labels_of(window) == 1).all()
    window.session.editing.undo()
    assert labels_of(window).max() == 0


def test_fill_tolerance_in_the_tool_bar(window, sample_512):
    window.open_image(sample_512)
    bar = window.tool_bar
    QTest.keyClick(window, Key.Key_F)
    assert window.tools.tool == "fill" and bar.tolerance_actions[1].isVisible()
    bar.tolerance_spin.setValue(100)  # intensity ignored: labels only, the old fill (asks: most of the slice)
    assert window.tools.fill_tolerance == 100
    mouse_stroke(window, [(5, 5)])
    assert window.asked == [LARGE_FILL] and (labels_of(window) == window.session.active_class + 1).all()
    QTest.keyClick(window, Key.Key_B)
    assert not bar.tolerance_actions[1].isVisible()


def wheel(window, y, x, notches, modifiers=QtCore.Qt.KeyboardModifier.NoModifier) -> None:
    viewport = window.canvas.view.viewport()
    pos = QtCore.QPointF(window.canvas.pixel_to_viewport(y, x))
    event = QtGui.QWheelEvent(pos, QtCore.QPointF(viewport.mapToGlobal(pos.toPoint())), QtCore.QPoint(0, 0),
                              QtCore.QPoint(0, 120 * notches), QtCore.Qt.MouseButton.NoButton, modifiers,
                              QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(viewport, event)


def test_ctrl_wheel_changes_the_brush_size_and_the_plain_wheel_zooms(window, sample_512):
    window.open_image(sample_512)
    window.tools.set_brush_size(20)
    view = window.canvas.viewbox.viewRange()
    wheel(window, 200, 200, 1, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert window.tools.brush_size == 25 and window.tool_bar.size_spin.value() == 25
    assert window.canvas.viewbox.viewRange() == view  # Ctrl+wheel does not zoom
    assert "Brush size 25 px" in window.statusBar().currentMessage()
    wheel(window, 200, 200, -2, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert window.tools.brush_size == 16
    wheel(window, 200, 200, 1)
    assert window.tools.brush_size == 16 and window.canvas.viewbox.viewRange() != view


def test_shift_drag_changes_the_brush_size_and_paints_nothing(window, sample_512):
    window.open_image(sample_512)
    window.tools.set_brush_size(20)
    canvas = window.canvas
    start = canvas.pixel_to_viewport(200, 200)
    # 100 screen pixels to the right doubles the size, whatever the zoom.
    right = [(200, 200), canvas.viewport_to_pixel(QtCore.QPointF(start.x() + 100, start.y()))]
    mouse_stroke(window, right, modifier=QtCore.Qt.KeyboardModifier.ShiftModifier)
    assert window.tools.brush_size == 40 and labels_of(window).max() == 0
    left = [(200, 200), canvas.viewport_to_pixel(QtCore.QPointF(start.x() - 100, start.y()))]
    mouse_stroke(window, left, modifier=QtCore.Qt.KeyboardModifier.ShiftModifier)
    assert window.tools.brush_size == 20 and labels_of(window).max() == 0
    assert "Brush size 20 px" in window.statusBar().currentMessage()
    mouse_stroke(window, [(200, 200)])  # without Shift the brush paints again, at the new size
    disk = np.pi * 10 ** 2  # a 20 px brush (the click lands between pixel centres: a few pixels either way)
    assert abs((labels_of(window) > 0).sum() - disk) < 0.05 * disk


def test_brackets_step_proportionally_and_the_outline_follows(window, sample_512):
    window.open_image(sample_512)
    window.activateWindow()
    window.tools.set_brush_size(40)
    QTest.mouseMove(window.canvas.view.viewport(), window.canvas.pixel_to_viewport(100, 100))
    QTest.keyClick(window, Key.Key_BracketRight)
    assert window.tools.brush_size == 50  # x 1.25, not + 1
    outline = window.canvas.brush_outline.rect()
    assert outline.width() == 50 and abs(outline.center().x() - 100.5) < 1  # redrawn at once, at the cursor
    QTest.keyClick(window, Key.Key_BracketLeft)
    QTest.keyClick(window, Key.Key_BracketLeft)
    assert window.tools.brush_size == 32
    assert "Brush size 32 px" in window.statusBar().currentMessage()
    window.tools.set_brush_size(1)
    QTest.keyClick(window, Key.Key_BracketLeft)
    assert window.tools.brush_size == 1
    QTest.keyClick(window, Key.Key_BracketRight)
    assert window.tools.brush_size == 2  # at least 1 px per press
