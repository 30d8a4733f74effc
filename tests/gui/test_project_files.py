"""Projects in the application: autosave, save and reopen, recent projects, closing, bad files."""

from __future__ import annotations

import numpy as np
import tifffile
from PySide6 import QtCore, QtWidgets

from gui_helpers import labels_of, mouse_stroke
from unet_studio.core.project import folder as proj

Button = QtWidgets.QMessageBox.StandardButton


def test_autosave_writes_labels_after_a_stroke(window, qtbot, tmp_path, data_dir):
    folder = tmp_path / "my project"
    assert window.open_project(folder)
    window.open_image(data_dir / "isbi2012" / "images" / "001.tif")
    window.session._autosave.setInterval(200)
    with qtbot.waitSignal(window.session.saved, timeout=5000):
        mouse_stroke(window, [(10, 10), (40, 40)])
    path = folder / "labels" / "001_labels.tif"
    assert path.is_file()
    np.testing.assert_array_equal(tifffile.imread(path), labels_of(window))
    assert not window.session.is_dirty
    assert not list((folder / "labels").glob(".*tmp*"))  # atomic writes leave no temporary file


def test_save_and_reopen_project(qtbot, window, tmp_path, data_dir):
    from unet_studio.gui.main_window import MainWindow

    folder = tmp_path / "project"
    window.open_project(folder)
    window.open_image(data_dir / "isbi2012" / "images" / "000.tif")
    window.open_image(data_dir / "hela_timelapse" / "hela_02_t10.tif")
    window.session.set_current_slice(3)
    mouse_stroke(window, [(100, 100), (120, 180)])
    window.session.rename_class(1, "cells")
    window.session.add_class("debris", "#00ff00")
    hela_labels = window.session.current.labels.data.copy()
    window.tools.set_brush_size(11)
    window.overlay_panel.prediction_opacity_slider.setValue(20)
    window.training_panel.set_settings({"epochs": 7})
    window.close()  # saves on close
    assert not window.isVisible()

    again = MainWindow()
    qtbot.addWidget(again)
    assert again.open_project(folder)
    session = again.session
    assert [state.name for state in session.images] == ["000", "hela_02_t10"]
    assert [c.name for c in session.classes] == ["background", "cells", "debris"]
    assert session.classes[2].color == "#00ff00"
    np.testing.assert_array_equal(session.images[1].labels.data, hela_labels)
    assert session.images[1].labels.data[3].any()
    assert again.tools.brush_size == 11 and again.training_panel.settings()["epochs"] == 7
    assert again.overlay_panel.prediction_opacity_slider.value() == 20
    assert again.canvas.prediction_item.opacity() == again.overlay_panel.state()["prediction_opacity"]
    assert folder in proj.load_recent()
    again.actions.fill_recent(again.recent_menu)
    assert any(str(folder) == action.text() for action in again.recent_menu.actions())


def test_closing_an_untitled_project_with_labels_asks(window, data_dir):
    window.open_image(data_dir / "isbi2012" / "images" / "000.tif")
    mouse_stroke(window, [(10, 10)])
    window.answers["Save the project?"] = Button.Cancel
    window.close()
    assert window.isVisible() and "Save the project?" in window.asked
    window.answers["Save the project?"] = Button.Discard
    window.close()
    assert not window.isVisible()


def test_untitled_project_is_autosaved_for_crash_recovery(window, qtbot, user_dirs, data_dir):
    window.open_image(data_dir / "isbi2012" / "images" / "000.tif")
    window.session._autosave.setInterval(100)
    with qtbot.waitSignal(window.session.saved, timeout=5000):
        mouse_stroke(window, [(10, 10), (10, 50)])
    folder = window.session.folder
    assert folder.parent == user_dirs / "untitled"
    reopened = proj.load_project(folder)
    assert reopened.images[0].path.name == "000.tif"
    assert tifffile.imread(folder / "labels" / "000_labels.tif")[10, 30] == 2


def test_bad_files_are_reported_and_the_window_stays_usable(window, tmp_path, data_dir):
    window.open_image(data_dir / "isbi2012" / "images" / "000.tif")
    mouse_stroke(window, [(10, 10)])
    for name, content in (("empty.tif", b""), ("broken.tif", b"II*\x00garbage" * 10), ("notes.txt", b"hello")):
        (tmp_path / name).write_bytes(content)
        window.last_error = None
        window.open_image(tmp_path / name)
        assert window.last_error is not None, name
        assert name in window.last_error[1]
    window.open_project(tmp_path / "broken.tif")
    assert window.last_error[0] == "Cannot open project"
    assert len(window.session.images) == 1 and labels_of(window)[10, 10] == 2
    mouse_stroke(window, [(50, 50)])
    assert labels_of(window)[50, 50] == 2
    window.session.discard_untitled()


def test_failed_autosave_is_reported_and_nothing_is_lost(window, qtbot, tmp_path, monkeypatch, data_dir):
    from unet_studio.core.errors import ImageWriteError

    folder = tmp_path / "project"
    window.open_project(folder)
    window.open_image(data_dir / "isbi2012" / "images" / "000.tif")
    window.session.save_now()

    def full_disk(path, labels):
        raise ImageWriteError(f"cannot write {path}: the disk is full; free some space and save again")

    monkeypatch.setattr(proj, "save_labels", full_disk)
    with qtbot.waitSignal(window.session.error, timeout=5000):
        mouse_stroke(window, [(10, 10)])
        window.session.save_in_background()
    assert window.session.is_dirty and "disk is full" in window.last_error[1]
    assert window.windowTitle().endswith("*")
    monkeypatch.undo()
    assert window.session.save_now() and not window.session.is_dirty
    assert tifffile.imread(folder / "labels" / "000_labels.tif")[10, 10] == 2


def test_drop_a_file_on_the_image_opens_it(window, qtbot, data_dir):
    from PySide6 import QtGui

    path = data_dir / "isbi2012" / "images" / "002.tif"
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(path))])
    pos = QtCore.QPointF(50, 50)
    enter = QtGui.QDragEnterEvent(pos.toPoint(), QtCore.Qt.DropAction.CopyAction, mime,
                                  QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    target = window.canvas.view.viewport()  # dropped onto the image view
    QtWidgets.QApplication.sendEvent(target, enter)
    assert enter.isAccepted()
    drop = QtGui.QDropEvent(pos, QtCore.Qt.DropAction.CopyAction, mime, QtCore.Qt.MouseButton.LeftButton,
                            QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(target, drop)
    assert window.session.current.entry.path == path.resolve()


def test_save_untitled_project_as_a_folder(window, qtbot, tmp_path, user_dirs, data_dir):
    window.open_image(data_dir / "isbi2012" / "images" / "000.tif")
    window.session._autosave.setInterval(50)
    with qtbot.waitSignal(window.session.saved, timeout=5000):
        mouse_stroke(window, [(10, 10), (10, 50)])
    scratch = window.session.folder
    target = tmp_path / "chosen folder"
    window.choose_folder = lambda title: target
    window.actions.save_as_dialog()
    assert window.session.folder == target.resolve() and not window.session.is_untitled
    assert not scratch.exists()  # the untitled scratch folder is gone once saved elsewhere
    assert tifffile.imread(target / "labels" / "000_labels.tif")[10, 30] == 2
    assert "untitled" not in window.windowTitle()
    window.close()
    assert window.asked == []  # a saved project closes without questions


def test_export_dialog_choices(window, tmp_path):
    from unet_studio.gui.panels.export_dialog import ExportDialog

    dialog = ExportDialog(tmp_path / "out", has_model=False, parent=window)
    folder, what, scope = dialog.choice()
    assert folder == tmp_path / "out" and what == {"annotations"} and scope == "image"
    dialog = ExportDialog(tmp_path / "out", has_model=True, parent=window)
    dialog.checks["instances"].setChecked(False)
    dialog.scope_all.setChecked(True)
    _, what, scope = dialog.choice()
    assert "instances" not in what and "labels" in what and scope == "all"
    assert not dialog.tta()
    dialog.tta_check.setChecked(True)
    assert dialog.tta()
    assert not ExportDialog(tmp_path / "out", has_model=False, parent=window).tta_check.isEnabled()
