"""Contrast with a histogram (issue 17, item 12): drag the levels, Auto, per-channel composite; the status bar.

The real window, real mouse events on the histogram's level line; nothing here measures time.
"""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtTest import QTest

from unet_studio.gui.composite import composite_rgb, plane_histogram
from unet_studio.gui.view_state import COMPOSITE

from gui_helpers import mouse_stroke


def drag_level_line(window, which: int, to_value: float) -> None:
    """Drag the low (0) or high (1) edge of the histogram's region to ``to_value`` with the mouse."""
    histogram = window.display_panel.histogram
    view = histogram.lut_widget
    item = histogram.item
    start_value = histogram.levels()[which]
    y = item.vb.viewRect().center().y()

    def at(value):
        return view.mapFromScene(item.vb.mapViewToScene(QtCore.QPointF(value, y)))

    viewport = view.viewport()
    QTest.mousePress(viewport, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier,
                     at(start_value))
    for fraction in (0.25, 0.5, 0.75, 1.0):
        pos = at(start_value + fraction * (to_value - start_value))
        event = QtGui.QMouseEvent(QtCore.QEvent.Type.MouseMove, QtCore.QPointF(pos),
                                  QtCore.QPointF(viewport.mapToGlobal(pos)), QtCore.Qt.MouseButton.NoButton,
                                  QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
        QtWidgets.QApplication.sendEvent(viewport, event)
    QTest.mouseRelease(viewport, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier,
                       at(to_value))


def hover(window, y: int, x: int) -> None:
    """A real mouse move (no button) over pixel (y, x) of the canvas."""
    viewport = window.canvas.view.viewport()
    pos = window.canvas.pixel_to_viewport(y, x)
    event = QtGui.QMouseEvent(QtCore.QEvent.Type.MouseMove, QtCore.QPointF(pos), QtCore.QPointF(viewport.mapToGlobal(pos)),
                              QtCore.Qt.MouseButton.NoButton, QtCore.Qt.MouseButton.NoButton,
                              QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(viewport, event)


@pytest.fixture
def two_channels(tmp_path, sample_stack):
    nuclei = sample_stack[0].astype(np.uint16) * 16
    data = np.stack([nuclei, 4095 - nuclei]).astype(np.uint16)
    path = tmp_path / "two channels.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "CYX"})
    return path, data


def test_the_histogram_shows_the_slice_and_dragging_its_edge_sets_the_contrast(window, qtbot, sample,
                                                                               sample_stack):
    window.open_image(sample)
    histogram, canvas = window.display_panel.histogram, window.canvas
    centers, counts = plane_histogram(sample_stack[0])
    np.testing.assert_allclose(histogram.item.plot.xData, centers)
    assert histogram.item.plot.yData.max() > 0
    assert histogram.levels() == pytest.approx(canvas.levels)  # the region is the contrast shown
    auto = canvas.levels
    drag_level_line(window, 1, auto[1] / 2)  # the high edge, halfway down: brighter
    qtbot.waitUntil(lambda: window.view_state.channel_levels(0) is not None, timeout=2000)
    low, high = window.view_state.channel_levels(0)
    assert high == pytest.approx(auto[1] / 2, rel=0.1) and low == pytest.approx(auto[0], abs=1)
    assert canvas.raw_item.levels == pytest.approx((low, high))
    # Levels the person set stay from slice to slice (as in Fiji); Auto hands them back to the percentiles.
    window.session.set_current_slice(1)
    assert canvas.levels == pytest.approx((low, high))
    QTest.mouseClick(histogram.auto_button, QtCore.Qt.MouseButton.LeftButton)
    assert window.view_state.channel_levels(0) is None
    assert canvas.levels != pytest.approx((low, high)) and histogram.levels() == pytest.approx(canvas.levels)


def test_a_composite_adds_each_channel_in_its_colour_with_its_own_contrast(window, two_channels):
    path, data = two_channels
    window.open_image(path)
    panel, canvas, view = window.display_panel, window.canvas, window.view_state
    assert not panel.contrast_channel_combo.isVisibleTo(panel)  # a single channel shown: nothing to choose
    panel.channel_combo.setCurrentIndex(panel.channel_combo.findData(COMPOSITE))
    assert panel.contrast_channel_combo.isVisibleTo(panel)
    before = canvas.raw_item.image.copy()
    np.testing.assert_array_equal(before, composite_rgb(data, canvas.channel_levels))
    first = canvas.channel_levels[0]
    panel.contrast_channel_combo.setCurrentIndex(1)  # the histogram now shows the second channel
    centers, _ = plane_histogram(data[1])
    np.testing.assert_allclose(panel.histogram.item.plot.xData, centers)
    ramp = panel.histogram.item.gradient.getLookupTable(3)
    assert tuple(ramp[-1]) == (255, 0, 255)  # the second channel's colour: magenta
    drag_level_line(window, 1, canvas.channel_levels[1][1] / 2)
    assert view.channel_levels(1) is not None and view.channel_levels(0) is None
    assert canvas.channel_levels[0] == first  # the first channel keeps its contrast
    after = canvas.raw_item.image
    # Magenta is red + blue: the second channel got brighter, green (the first channel only) did not move.
    assert after[..., 0].mean() > before[..., 0].mean()
    np.testing.assert_array_equal(after[..., 1], before[..., 1])
    # Back to one channel: shown alone, in grey, with the levels of that channel.
    panel.channel_combo.setCurrentIndex(panel.channel_combo.findData(1))
    assert canvas.raw_item.image.ndim == 2 and canvas.levels == view.channel_levels(1)
    assert tuple(panel.histogram.item.gradient.getLookupTable(3)[-1]) == (255, 255, 255)


def test_another_image_starts_with_automatic_contrast(window, sample, two_channels):
    window.open_image(sample)
    drag_level_line(window, 1, window.canvas.levels[1] / 2)
    assert window.view_state.levels
    window.open_image(two_channels[0])  # uint16: the uint8 image's levels would show it white
    assert window.view_state.levels == ()
    assert window.display_panel.histogram.levels() == pytest.approx(window.canvas.levels)


def test_painting_does_not_recompute_the_histogram(window, sample_512):
    """The histogram is computed when the slice changes, never on a stroke (painting stays as fast)."""
    window.open_image(sample_512)
    shown = window.display_panel.histogram.item.plot.xData
    mouse_stroke(window, [(40, 40), (40, 120), (100, 120)])
    assert window.display_panel.histogram.item.plot.xData is shown


def test_status_bar_readout_follows_clicks_slices_and_predictions(window, sample, sample_stack):
    """Item 10: the text under a still cursor changes when what is under it changes."""
    window.open_image(sample)
    hover(window, 40, 40)
    assert f"value {sample_stack[0][40, 40]}" in window.cursor_label.text()
    assert "label unlabelled" in window.cursor_label.text()
    mouse_stroke(window, [(40, 40)])  # a click with the brush, no move afterwards
    assert "label foreground" in window.cursor_label.text()
    window.session.set_current_slice(1)  # the other slice: its value, and nothing painted there
    text = window.cursor_label.text()
    assert f"value {sample_stack[1][40, 40]}" in text and "label unlabelled" in text
    probs = np.zeros((2, 256, 256), np.float32)
    probs[1] = 0.8
    probs[0] = 0.2
    window.session.slices.set_probabilities(window.session.current_index, 1, probs)
    assert "prediction foreground (0.80)" in window.cursor_label.text()
    window.canvas.cursor_moved.emit(-1, -1)  # the cursor left the image
    window.session.set_current_slice(0)
    assert window.cursor_label.text() == ""


def test_on_big_images_the_contrast_changes_when_the_drag_ends(qtbot):
    from unet_studio.gui.panels.histogram import ContrastHistogram

    histogram = ContrastHistogram()
    qtbot.addWidget(histogram)
    histogram.show_histogram(np.arange(256.0), np.ones(256), (10.0, 200.0))
    seen = []
    histogram.levels_changed.connect(lambda low, high: seen.append((low, high)))
    histogram.live = False
    line = histogram.item.region.lines[1]
    line.setValue(150.0)  # what each step of a drag does
    assert seen == []
    line.sigPositionChangeFinished.emit(line)  # the release
    assert seen == [(10.0, 150.0)]
    histogram.live = True
    line.setValue(120.0)
    assert seen[-1] == (10.0, 120.0)
