"""Painting on the real main window with simulated mouse and keyboard events."""

from __future__ import annotations

from PySide6 import QtCore
from PySide6.QtTest import QTest

from gui_helpers import labels_of, mouse_stroke


def test_open_real_image_shows_it(window, sample_512):
    window.open_image(sample_512)
    assert window.last_error is None
    assert window.session.current.labels.shape == (1, 512, 512)
    assert window.canvas.raw_item.image.shape == (512, 512)
    assert window.images_panel.list.count() == 1
    assert not window.canvas.slider_widget.isVisible()  # a single image has no slice slider
    lo, hi = window.canvas.levels
    assert lo < hi


def test_mouse_stroke_paints_without_gaps(window, sample_512):
    window.open_image(sample_512)
    window.tools.set_brush_size(3)
    window.session.set_active_class(1)
    # Two far-apart mouse positions: the stroke must fill the segment between them.
    mouse_stroke(window, [(100, 100), (100, 300)])
    labels = labels_of(window)
    assert (labels[100, 100:301] == 2).all()
    assert labels[90].max() == 0 and labels.max() == 2
    assert window.session.current.labels.can_undo


def test_pan_with_ctrl_drag_does_not_paint(window, sample_512):
    window.open_image(sample_512)
    before = window.canvas.viewbox.viewRange()
    mouse_stroke(window, [(200, 200), (200, 260), (200, 320)], modifier=QtCore.Qt.KeyboardModifier.ControlModifier)
    assert labels_of(window).max() == 0
    assert window.canvas.viewbox.viewRange() != before


def test_eraser_fill_and_picker_from_keyboard(window, qtbot, sample_512):
    window.open_image(sample_512)
    window.activateWindow()
    window.tools.set_brush_size(9)
    window.session.set_active_class(0)
    mouse_stroke(window, [(50, 50), (50, 150)])
    QTest.keyClick(window, QtCore.Qt.Key.Key_E)
    assert window.tools.tool == "eraser"
    mouse_stroke(window, [(50, 100), (50, 101)])
    assert labels_of(window)[50, 100] == 0 and labels_of(window)[50, 60] == 1
    # Fill a closed square outline painted with class 2 from inside.
    QTest.keyClick(window, QtCore.Qt.Key.Key_B)
    QTest.keyClick(window, QtCore.Qt.Key.Key_2)
    window.tools.set_brush_size(1)
    mouse_stroke(window, [(300, 300), (300, 340), (340, 340), (340, 300), (300, 300)])
    QTest.keyClick(window, QtCore.Qt.Key.Key_F)
    QTest.keyClick(window, QtCore.Qt.Key.Key_1)
    window.tools.set_fill_tolerance(100)  # intensity ignored: the fill stops at the painted outline only
    mouse_stroke(window, [(320, 320)])
    labels = labels_of(window)
    assert (labels[302:339, 302:339] == 1).all() and labels[300, 320] == 2 and labels[360, 360] == 0
    QTest.keyClick(window, QtCore.Qt.Key.Key_L)
    mouse_stroke(window, [(300, 320)])
    assert window.session.active_class == 1
    assert window.classes_panel.list.currentRow() == 1


def test_number_keys_and_brackets(window, sample_512):
    window.open_image(sample_512)
    window.session.class_editing.add("mitochondria")
    window.activateWindow()
    QTest.keyClick(window, QtCore.Qt.Key.Key_1)
    assert window.session.active_class == 0
    QTest.keyClick(window, QtCore.Qt.Key.Key_3)
    assert window.session.active_class == 2 and window.classes_panel.list.currentRow() == 2
    size = window.tools.brush_size
    QTest.keyClick(window, QtCore.Qt.Key.Key_BracketRight)
    assert window.tools.brush_size > size
    assert window.tool_bar.size_spin.value() == window.tools.brush_size
    QTest.keyClick(window, QtCore.Qt.Key.Key_BracketLeft)
    QTest.keyClick(window, QtCore.Qt.Key.Key_BracketLeft)
    assert window.tools.brush_size < size
    mouse_stroke(window, [(10, 10)])
    assert labels_of(window)[10, 10] == 3


def test_undo_redo_across_slice_change(window, qtbot, sample):
    window.open_image(sample)
    session = window.session
    assert session.current.n_slices == 2 and window.canvas.slider_widget.isVisible()
    window.tools.set_brush_size(5)
    mouse_stroke(window, [(100, 100), (100, 200)])
    window.canvas.slider.setValue(1)  # the person drags the slice slider
    assert session.current_slice == 1
    mouse_stroke(window, [(150, 150), (170, 200)])
    data = session.current.labels.data
    assert data[0].any() and data[1].any()
    window.activateWindow()
    QTest.keySequence(window, "Ctrl+Z")
    assert not data[1].any() and data[0].any() and session.current_slice == 1
    QTest.keySequence(window, "Ctrl+Z")
    assert not data[0].any()
    assert session.current_slice == 0 and window.canvas.slider.value() == 0  # undo shows its slice
    QTest.keySequence(window, "Ctrl+Shift+Z")
    assert data[0].any() and not data[1].any()
    QTest.keySequence(window, "Ctrl+Shift+Z")
    assert data[1].any() and session.current_slice == 1


def test_only_touched_label_tiles_are_rendered(window, sample_large):
    window.open_image(sample_large)  # 700 x 1100: 3 x 5 tiles
    canvas = window.canvas
    assert len(canvas.label_tiles) == 15
    rendered = []
    original = canvas.update_labels

    def counting(box):
        count = original(box)
        rendered.append(count)
        return count

    canvas.update_labels = counting
    window.session.labels_changed.disconnect()
    window.session.labels_changed.connect(window.binder._on_labels_changed)
    mouse_stroke(window, [(40, 40), (60, 60)])
    assert rendered and max(rendered) == 1
    tile = canvas.label_tiles[(0, 0)].image
    assert tile[50, 50] == window.session.active_class + 1
    assert canvas.label_tiles[(0, 0)].lut is not None and len(canvas.label_tiles[(0, 0)].lut) <= 256


def test_classes_add_rename_recolour_delete(window, sample_512):
    window.open_image(sample_512)
    panel, session = window.classes_panel, window.session
    panel.add_button.click()
    assert [c.name for c in session.classes] == ["background", "foreground", "class 3"]
    panel.list.item(2).setText("mitochondria")
    assert session.classes[2].name == "mitochondria"
    session.class_editing.recolor(2, "#00ff00")
    assert tuple(window.canvas.label_tiles[(0, 0)].lut[3, :3]) == (0, 255, 0)
    session.set_active_class(2)
    mouse_stroke(window, [(20, 20)])
    session.set_active_class(1)
    mouse_stroke(window, [(60, 60)])
    panel.list.setCurrentRow(0)
    panel.delete_button.click()  # asks (answered Yes), then class 1 goes; 2 -> 1, 3 -> 2
    assert [c.name for c in session.classes] == ["foreground", "mitochondria"]
    labels = labels_of(window)
    assert labels[20, 20] == 2 and labels[60, 60] == 1
    assert window.overlay_panel.class_combo.count() == 2


def test_painting_on_hidden_labels_shows_them(window, sample_512):
    """Issue 17, item 5: a dab on hidden labels was invisible; now the labels come back, and the window says so."""
    window.open_image(sample_512)
    window.overlay_panel.labels_visible_check.setChecked(False)
    assert not any(tile.isVisible() for tile in window.canvas.label_tiles.values())
    mouse_stroke(window, [(60, 60), (60, 90)])
    assert labels_of(window)[60, 75] == window.session.active_class + 1
    assert window.view_state.labels_visible and window.overlay_panel.labels_visible_check.isChecked()
    assert all(tile.isVisible() for tile in window.canvas.label_tiles.values())
    assert "Labels were hidden" in window.statusBar().currentMessage()


def test_no_unsaved_mark_at_start_up(window, sample):
    """Issue 17, item 10: the sample opened at start-up put a "*" in the title with nothing done."""
    window.open_image(sample)  # what `unet-studio` without arguments does
    assert not window.windowTitle().endswith("*")
    mouse_stroke(window, [(40, 40)])
    assert window.windowTitle().endswith("*")
    window.session.editing.undo()  # the project still changed since it was saved
    assert window.windowTitle().endswith("*")
