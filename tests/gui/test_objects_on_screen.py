"""Objects on screen (issue 16, item 4): the prediction shown as objects, their count, a click for measurements,
and the same objects as File > Export writes."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PySide6 import QtCore
from PySide6.QtTest import QTest

from gui_helpers import threshold_model
from unet_studio.core.predict import match_instances
from unet_studio.gui.objects_layer import object_colors, objects_display


@pytest.fixture
def predicted(window, qtbot, tmp_path, sample_stack):
    """The sample (one slice) in a project with the threshold model, the slice predicted."""
    image = tmp_path / "nuclei.tif"
    tifffile.imwrite(image, sample_stack[0])
    window.open_project(tmp_path / "project")
    window.open_image(image)
    threshold_model(window)
    with qtbot.waitSignal(window.prediction.finished, timeout=120000):
        window.prediction.predict("slice")
    assert window.session.slices.probabilities() is not None
    return image


def _show_objects(window, qtbot):
    with qtbot.waitSignal(window.binder.objects.ready, timeout=60000):
        window.view_state.update(prediction_mode="objects")
    shown = window.binder.objects_shown()
    assert shown is not None
    return shown


def test_objects_are_shown_counted_and_equal_to_the_exported_ones(window, qtbot, tmp_path, predicted):
    shown = _show_objects(window, qtbot)
    assert shown.count > 5  # the sample's nuclei
    # On screen: each object its colour index, outlines 255, nothing where there is no object.
    image = window.canvas.prediction_item.image
    np.testing.assert_array_equal(image, objects_display(shown.objects))
    assert set(np.unique(image[shown.objects == 0])) == {0}
    assert window.objects_label.text() == f"{shown.count} objects"
    # File > Export writes the same objects (one pipeline; the screen works on 8-bit probabilities, so a
    # pixel at exactly 0.5 may differ).
    out = tmp_path / "export"
    with qtbot.waitSignal(window.prediction.finished, timeout=120000):
        window.actions.export(out, {"instances", "measurements"}, "image")
    exported = tifffile.imread(out / "nuclei_instances.tif")
    assert exported.max() == shown.count
    matching = match_instances(shown.objects, exported, 0.9)
    assert matching.tp == shown.count
    assert (exported > 0).sum() == pytest.approx((shown.objects > 0).sum(), rel=0.01)


def test_the_count_follows_the_threshold_and_goes_when_objects_are_hidden(window, qtbot, predicted):
    first = _show_objects(window, qtbot)
    with qtbot.waitSignal(window.binder.objects.ready, timeout=60000):
        window.view_state.set_threshold(1, 0.999)  # only the brightest cores pass
    again = window.binder.objects_shown()
    assert again is not None and (again.objects > 0).sum() < (first.objects > 0).sum()
    window.view_state.update(prediction_mode="probability")
    assert window.objects_label.text() == ""
    assert window.binder.objects_shown() is None


def test_a_picker_click_on_an_object_shows_its_measurements(window, qtbot, predicted):
    shown = _show_objects(window, qtbot)
    label = int(np.bincount(shown.objects.ravel())[1:].argmax()) + 1  # the largest object
    ys, xs = np.nonzero(shown.objects == label)
    y, x = int(np.median(ys)), int(np.median(xs))
    if shown.objects[y, x] != label:
        y, x = int(ys[len(ys) // 2]), int(xs[len(xs) // 2])
    QTest.keyClick(window, QtCore.Qt.Key.Key_L)  # the picker
    assert window.tools.tool == "picker"
    viewport = window.canvas.view.viewport()
    QTest.mouseClick(viewport, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier,
                     window.canvas.pixel_to_viewport(y, x))
    message = window.statusBar().currentMessage()
    assert f"Object {label} of {shown.count}" in message
    assert f"area {int((shown.objects == label).sum())} px" in message
    # Hovering tells which object is under the cursor too.
    QTest.mouseMove(viewport, window.canvas.pixel_to_viewport(y, x + 1))
    QTest.mouseMove(viewport, window.canvas.pixel_to_viewport(y, x))
    assert f"object {label} of {shown.count}" in window.cursor_label.text()


def test_objects_display_colours():
    objects = np.zeros((20, 20), np.int32)
    objects[2:8, 2:8] = 1
    objects[10:18, 10:18] = 300  # beyond the palette: colours cycle, never index 0 or 255
    image = objects_display(objects)
    assert image[0, 0] == 0 and image[4, 4] == 1 and image[2, 4] == 255  # inside, outline
    assert 0 < image[14, 14] < 255
    lut = object_colors()
    assert lut.shape == (256, 4) and lut[0, 3] == 0 and (lut[1:, 3] == 255).all()
