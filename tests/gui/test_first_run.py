"""Issue 17 item 11: the first-run hint on the empty canvas and Help > Getting started."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from gui_helpers import drop_files, labels_of, mouse_stroke
from unet_studio.core import project as proj


def _menu_action(window, menu_title: str, text: str):
    menu = next(a.menu() for a in window.menuBar().actions() if a.menu() and a.menu().title() == menu_title)
    return next(action for action in menu.actions() if action.text() == text)


def test_the_hint_shows_until_the_first_stroke(window, qtbot, sample):
    hint = window.first_run_hint
    assert hint.isVisible() and "File > Open Image" in hint.text() and "Train" in hint.text()
    window.open_image(sample)
    assert hint.isVisible()
    # The hint floats over the image but lets the brush through: paint right under it.
    window.resize(1800, 700)  # a wide view: the image fills its height, its top rows under the hint
    qtbot.wait(20)
    window.canvas.reset_view()
    y, x = 2, 128
    on_canvas = window.canvas.view.viewport().mapTo(window.canvas, window.canvas.pixel_to_viewport(y, x))
    assert hint.geometry().contains(on_canvas), (hint.geometry(), on_canvas)
    window.tools.set_brush_size(3)
    mouse_stroke(window, [(y, x)])
    assert labels_of(window)[y, x] == 2
    assert not hint.isVisible()
    window.session.editing.undo()
    assert not hint.isVisible()  # gone for good in this window, even with nothing painted again
    window.session.discard_untitled()


def test_the_hint_is_not_shown_over_a_project_with_labels(window, qtbot, tmp_path, sample):
    from unet_studio.gui.main_window import MainWindow

    folder = tmp_path / "project"
    window.open_project(folder)
    window.open_image(sample)
    window.session.current.labels.data[0, 5, 5] = 1
    window.session.current.forced_dirty = True
    window.close()  # saved on close
    again = MainWindow()
    qtbot.addWidget(again)
    again.show()
    assert again.first_run_hint.isVisible()
    assert again.open_project(tmp_path / "empty") and again.first_run_hint.isVisible()
    assert again.open_project(folder) and not again.first_run_hint.isVisible()
    again.close()


def test_the_hint_follows_the_canvas_size(window, qtbot):
    hint = window.first_run_hint
    window.resize(1400, 900)
    qtbot.wait(20)
    wide = hint.geometry()
    window.resize(900, 700)
    qtbot.wait(20)
    narrow = hint.geometry()
    assert narrow.width() <= wide.width()
    assert window.canvas.rect().contains(narrow)


def test_help_getting_started(window, user_dirs):
    _menu_action(window, "&Help", "&Getting started").trigger()
    dialog = window.getting_started
    assert dialog.isVisible() and not dialog.isModal()
    text = dialog.browser.toPlainText()
    for words in ("Open an image", "File > Open Image", "Paint a few strokes", "Press Train", "Correct",
                  "Help > Shortcuts", "project.json", "labels/NAME_labels.tif", str(user_dirs / "untitled")):
        assert words in text, words
    dialog.close()
    assert not dialog.isVisible()


def test_dropping_an_image_on_the_hint_opens_it(window, qtbot, tmp_path, sample_stack):
    import tifffile

    path = tmp_path / "dropped.tif"
    tifffile.imwrite(path, sample_stack[0])
    hint = window.first_run_hint
    # Where the hint is: the widget under that point is the view (the hint lets drops through).
    center = hint.geometry().center()
    target = window.canvas.childAt(center)
    assert target is not hint
    drop_files(target, QtCore.QPointF(target.mapFrom(window.canvas, center)), [path])
    assert window.session.current.entry.path == path.resolve()
    np.testing.assert_array_equal(window.session.slices.raw()[0], sample_stack[0])
    assert proj.load_recent() == []
