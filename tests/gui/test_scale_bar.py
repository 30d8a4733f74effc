"""Pixel size and scale bar (issue 17, item 14): a round length about a fifth of the view, following the zoom;
a pixel size the person sets for an uncalibrated image, kept in the project."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from PySide6 import QtCore
from PySide6.QtTest import QTest

from unet_studio.core.io import write_image
from unet_studio.gui.scale_bar import format_length, nice_length, scale_bar_length


@pytest.mark.parametrize("target, expected", [(37, 20), (100, 100), (99.9, 50), (0.0042, 0.002), (7, 5),
                                              (1.5, 1), (2.5e6, 2e6)])
def test_nice_length_is_1_2_or_5_times_a_power_of_ten_at_most_the_target(target, expected):
    assert nice_length(target) == pytest.approx(expected)


@pytest.mark.parametrize("length, unit, text", [(50, "µm", "50 µm"), (2000, "µm", "2 mm"), (0.5, "µm", "500 nm"),
                                                (5, "inch", "5 inch"), (1, "m", "1 m")])
def test_format_length_keeps_the_number_readable(length, unit, text):
    assert format_length(length, unit) == text


def test_scale_bar_length_is_about_a_fifth_of_the_view():
    length, px = scale_bar_length(1000, 512, 0.5)  # 256 µm in view: a fifth is 51 µm
    assert length == 50 and px == pytest.approx(50 / 256 * 1000)


def menu_action(window, menu_title: str, text: str):
    menu = next(a.menu() for a in window.menuBar().actions() if a.text() == menu_title)
    return next(a for a in menu.actions() if a.text() == text)


@pytest.fixture
def calibrated(tmp_path, sample_stack):
    path = tmp_path / "calibrated.tif"
    write_image(path, sample_stack[0], "YX", pixel_size=(0.325, 0.325), unit="µm")
    return path


def test_a_calibrated_image_shows_a_round_scale_bar_bottom_right_that_follows_the_zoom(window, qtbot, calibrated):
    window.open_image(calibrated)
    bar, viewbox = window.canvas.scale_bar, window.canvas.viewbox
    assert bar.isVisible() and bar.unit == "µm"
    rect, width, height = bar.bar_rect(), viewbox.width(), viewbox.height()
    assert 0.08 * width < rect.width() <= 0.2 * width + 1  # a round length at most a fifth of the view
    assert rect.right() > 0.9 * width and rect.bottom() > 0.9 * height  # bottom right
    assert bar.text == format_length(bar.length, "µm") and bar.length in (1, 2, 5, 10, 20, 50, 100)
    first = bar.length
    viewbox.scaleBy((0.25, 0.25))  # zoom in four times: a shorter bar
    qtbot.waitUntil(lambda: bar.length < first, timeout=2000)
    assert 0.08 * width < bar.bar_rect().width() <= 0.2 * width + 1
    # The View menu's toggle hides and shows it.
    toggle = menu_action(window, "&View", "Scale &Bar")
    assert toggle.isCheckable() and toggle.isChecked()
    toggle.trigger()
    assert not bar.isVisible() and not window.view_state.scale_bar
    toggle.trigger()
    assert bar.isVisible()
    # The file's pixel size is shown and cannot be changed here.
    editor = window.display_panel.pixel_size
    assert not editor.isEnabled() and editor.value() == (pytest.approx(0.325), "µm")
    menu_action(window, "&Image", "Set &Pixel Size...").trigger()
    assert window.last_error is not None and "in its file" in window.last_error[1]


def test_an_uncalibrated_image_gets_the_pixel_size_the_person_sets_kept_in_the_project(window, qtbot, sample,
                                                                                     tmp_path):
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, tifffile.imread(sample)[0])
    window.open_image(plain)
    bar, editor = window.canvas.scale_bar, window.display_panel.pixel_size
    assert not bar.isVisible() and editor.isEnabled() and editor.value()[0] == 0
    editor.unit_combo.setCurrentText("nm")  # the unit first, then the value: both are kept
    editor.size_spin.setValue(500)
    entry = window.session.current.entry
    assert (entry.pixel_size, entry.unit) == ((500, 500), "nm")
    editor.unit_combo.setCurrentText("µm")
    editor.size_spin.setValue(0.5)  # typed in the Display panel
    assert (entry.pixel_size, entry.unit) == ((0.5, 0.5), "µm")
    assert bar.isVisible() and bar.pixel_size == 0.5 and window.session.is_dirty
    # Image > Set Pixel Size...: a dialog that does not block; OK sets the value.
    menu_action(window, "&Image", "Set &Pixel Size...").trigger()
    dialog = window.binder.pixel_size_dialog
    assert dialog.isVisible() and dialog.editor.value() == (0.5, "µm")
    dialog.editor.size_spin.setValue(2.0)
    dialog.editor.unit_combo.setCurrentText("nm")
    dialog.accept()
    assert (entry.pixel_size, entry.unit) == ((2.0, 2.0), "nm") and bar.unit == "nm"
    # Saved in project.json, read back with the project.
    folder = tmp_path / "project"
    assert window.session.save_project_as(folder)
    window.session.wait_for_writer()
    data = json.loads((folder / "project.json").read_text(encoding="utf-8"))
    assert data["images"][0]["pixel_size"] == [2.0, 2.0] and data["images"][0]["unit"] == "nm"
    assert window.open_project(folder)
    assert window.session.current.entry.pixel_size == (2.0, 2.0)
    assert window.canvas.scale_bar.isVisible() and window.display_panel.pixel_size.value() == (2.0, "nm")
    # 0 means "not calibrated" again.
    window.display_panel.pixel_size.size_spin.setValue(0.0)
    assert window.session.current.entry.pixel_size is None and not window.canvas.scale_bar.isVisible()


def test_the_screen_shows_the_histogram_and_the_scale_bar(window, calibrated, tmp_path):
    """What a person sees (offscreen): a readable histogram in the Display panel and a bar with its label."""
    window.open_image(calibrated)
    image = window.grab().toImage()
    histogram = window.display_panel.histogram.lut_widget
    assert histogram.height() >= 100 and histogram.width() >= 150  # not squashed in the dock
    top_left = histogram.mapTo(window, QtCore.QPoint(0, 0))
    crop = image.copy(top_left.x(), top_left.y(), histogram.width(), histogram.height())
    assert len({crop.pixel(x, y) for x in range(0, crop.width(), 3) for y in range(0, crop.height(), 3)}) > 5
    canvas = window.canvas
    rect = canvas.scale_bar.mapRectToScene(canvas.scale_bar.bar_rect())
    centre = canvas.view.mapFromScene(rect.center())
    at = canvas.view.viewport().mapTo(window, centre)
    assert QtCore.QRect(0, 0, image.width(), image.height()).contains(at)
    assert image.pixelColor(at).lightness() > 200  # the white bar is drawn there


def test_file_export_measures_in_the_pixel_size_set_in_the_project(window, qtbot, tmp_path, sample_stack):
    """The pixel size the person set reaches File > Export: measurements in µm, outputs calibrated."""
    import csv
    import io

    from model_helpers import threshold_net

    from unet_studio.core.io import read_image
    from unet_studio.core.model import ModelInfo, save_model

    image = tmp_path / "nuclei.tif"
    tifffile.imwrite(image, sample_stack[0])  # no calibration in the file
    window.open_project(tmp_path / "project")
    window.open_image(image)
    net = threshold_net()
    save_model(window.session.project.model_dir, net,
               ModelInfo(net.config, [1, 2], [c.name for c in window.session.classes],
                         {"method": "percentile", "low": 1.0, "high": 99.8}))
    window.session.notify_model_changed()
    window.display_panel.pixel_size.size_spin.setValue(0.5)
    out = tmp_path / "export"
    with qtbot.waitSignal(window.prediction.finished, timeout=120000):
        window.actions.export(out, {"labels", "measurements"}, "image")
    assert window.last_error is None
    rows = list(csv.DictReader(io.StringIO((out / "nuclei_measurements.csv").read_text())))
    assert len(rows) > 5
    for row in rows:
        assert float(row["area_um2"]) == pytest.approx(float(row["area_px"]) * 0.25)
    with read_image(out / "nuclei_labels.tif") as labels:
        assert labels.pixel_size == pytest.approx((0.5, 0.5)) and labels.unit == "µm"
