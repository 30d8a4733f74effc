"""Projects in the application: autosave, save and reopen, recent projects, closing, bad files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tifffile
from PySide6 import QtCore, QtWidgets

from gui_helpers import labels_of, mouse_stroke
from unet_studio.core import project as proj
from unet_studio.resources import sample_image_path

Button = QtWidgets.QMessageBox.StandardButton


@pytest.fixture
def image(tmp_path):
    """``image(name, slices=1)``: the bundled sample (256 x 256 nuclei) as ``images/NAME``, ``slices`` deep."""
    def make(name: str, slices: int = 1):
        path = tmp_path / "images" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            data = tifffile.imread(sample_image_path())
            tifffile.imwrite(path, np.concatenate([data] * ((slices + 1) // 2))[:slices])
        return path
    return make


def test_autosave_writes_labels_after_a_stroke(window, qtbot, tmp_path, image):
    folder = tmp_path / "my project"
    assert window.open_project(folder)
    window.open_image(image("001.tif"))
    window.session.autosaver.set_delays(200)
    with qtbot.waitSignal(window.session.saved, timeout=5000):
        mouse_stroke(window, [(10, 10), (40, 40)])
    path = folder / "labels" / "001_labels.tif"
    assert path.is_file()
    np.testing.assert_array_equal(tifffile.imread(path), labels_of(window))
    assert not window.session.is_dirty
    assert not list((folder / "labels").glob(".*tmp*"))  # atomic writes leave no temporary file


def test_save_and_reopen_project(qtbot, window, tmp_path, image):
    from unet_studio.gui.main_window import MainWindow

    folder = tmp_path / "project"
    window.open_project(folder)
    window.open_image(image("000.tif"))
    window.open_image(image("hela_02_t10.tif", slices=6))
    window.session.set_current_slice(3)
    mouse_stroke(window, [(100, 100), (120, 180)])
    window.session.class_editing.rename(1, "cells")
    window.session.class_editing.add("debris", "#00ff00")
    hela_labels = window.session.current.labels.data.copy()
    window.tools.set_brush_size(11)
    window.overlay_panel.prediction_opacity_slider.setValue(20)
    window.training_panel.set_settings(dataclasses.replace(window.training_panel.settings(), epochs=7))
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
    assert again.tools.brush_size == 11 and again.training_panel.settings().epochs == 7
    assert again.overlay_panel.prediction_opacity_slider.value() == 20
    assert again.canvas.prediction_item.opacity() == again.view_state.prediction_opacity
    assert folder in proj.load_recent()
    again.actions.fill_recent(again.recent_menu)
    assert any(str(folder) == action.text() for action in again.recent_menu.actions())


def test_closing_an_untitled_project_with_labels_asks(window, image):
    window.open_image(image("000.tif"))
    mouse_stroke(window, [(10, 10)])
    window.answers["Save the project?"] = Button.Cancel
    window.close()
    assert window.isVisible() and "Save the project?" in window.asked
    window.answers["Save the project?"] = Button.Discard
    window.close()
    assert not window.isVisible()


def test_untitled_project_is_autosaved_for_crash_recovery(window, qtbot, user_dirs, image):
    window.open_image(image("000.tif"))
    window.session.autosaver.set_delays(100)
    with qtbot.waitSignal(window.session.saved, timeout=5000):
        mouse_stroke(window, [(10, 10), (10, 50)])
    folder = window.session.folder
    assert folder.parent == user_dirs / "untitled"
    reopened = proj.load_project(folder)
    assert reopened.images[0].path.name == "000.tif"
    assert tifffile.imread(folder / "labels" / "000_labels.tif")[10, 30] == 2


def test_bad_files_are_reported_and_the_window_stays_usable(window, tmp_path, image):
    window.open_image(image("000.tif"))
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


def test_failed_autosave_is_reported_and_nothing_is_lost(window, qtbot, tmp_path, monkeypatch, image):
    from unet_studio.core.errors import ImageWriteError

    folder = tmp_path / "project"
    window.open_project(folder)
    window.open_image(image("000.tif"))
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


def test_drop_a_file_on_the_image_opens_it(window, qtbot, image):
    from PySide6 import QtGui

    path = image("002.tif")
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


def test_save_untitled_project_as_a_folder(window, qtbot, tmp_path, user_dirs, image):
    window.open_image(image("000.tif"))
    window.session.autosaver.set_delays(50)
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


# -- refusals that keep other people's files and the person's labels (issues 13 and 17) -------------------

def test_closing_an_untitled_project_into_a_project_folder_asks_again(window, tmp_path, image):
    """Issue 17 item 1: Save on close into a folder holding a project: a clean message, the window stays open,
    the folder is asked again; no exception escapes closeEvent."""
    other = tmp_path / "someone else's project"
    proj.create_project(other)
    before = (other / "project.json").read_bytes()
    window.open_image(image("000.tif"))
    mouse_stroke(window, [(10, 10), (10, 50)])
    chosen = []
    answers = iter([other, None])
    window.choose_folder = lambda title: chosen.append(title) or next(answers)
    window.answers["Save the project?"] = Button.Save
    window.close()
    assert window.isVisible() and len(chosen) == 2  # refused, asked again, then cancelled
    assert window.last_error[0] == "Cannot save the project there" and "another project" in window.last_error[1]
    assert (other / "project.json").read_bytes() == before and labels_of(window)[10, 30] == 2
    target = tmp_path / "mine"
    window.choose_folder = lambda title: target
    window.close()
    assert not window.isVisible()
    assert tifffile.imread(target / "labels" / "000_labels.tif")[10, 30] == 2


def test_a_folder_refused_twice_stops_the_questions(window, tmp_path, image):
    """A folder dialog that keeps returning the same refused folder (seen under Xvfb, where it returned its
    start folder at once, again and again) ends the questions: no endless message boxes, nothing saved."""
    other = tmp_path / "someone else's project"
    proj.create_project(other)
    window.open_image(image("000.tif"))
    mouse_stroke(window, [(10, 10), (10, 50)])
    chosen = []
    window.choose_folder = lambda title: chosen.append(title) or other
    assert not window.actions.save_as_dialog()
    assert len(chosen) == 2 and window.session.is_untitled
    assert window.last_error[0] == "Cannot save the project there"
    window.session.discard_untitled()


def test_save_as_never_replaces_another_projects_labels(window, tmp_path, image):
    """Issue 13 case 6: a folder with someone's labels/NAME_labels.tif (no project.json) is refused, untouched."""
    victim = tmp_path / "victim"
    proj.save_labels(victim / "labels" / "000_labels.tif", np.full((256, 256), 7, np.uint8))
    window.open_image(image("000.tif"))
    mouse_stroke(window, [(10, 10)])
    window.choose_folder = lambda title: victim if "another" not in title else None
    assert not window.actions.save_as_dialog()
    assert "labels/" in window.last_error[1] and window.session.is_untitled
    assert (tifffile.imread(victim / "labels" / "000_labels.tif") == 7).all()
    window.session.discard_untitled()


def test_bad_project_settings_are_ignored_with_a_notice(window, tmp_path, image):
    """Issue 13 case 19: hostile values in project.json never reach the widgets; the person is told."""
    import json

    folder = tmp_path / "p"
    window.open_project(folder)
    window.open_image(image("000.tif"))
    assert window.session.save_now()
    window.open_project(tmp_path / "another")  # the first one closed: its project.json is not written again
    data = json.loads((folder / "project.json").read_text())
    data["classes"][1]["color"] = "#zz"
    data["images"][0]["name"] = "../../victim/evil"
    data["settings"] = {"training": {"epochs": 1e20}, "brush_size": "big", "contrast_percentiles": 5,
                        "overlay": {"label_opacity": "x"}}
    (folder / "project.json").write_text(json.dumps(data))
    assert window.open_project(folder)
    title, text = window.last_error
    assert title == "Some project settings were ignored"
    for key in ("color", "epochs", "brush_size", "contrast_percentiles", "label_opacity", "name"):
        assert key in text
    mouse_stroke(window, [(20, 20)])
    assert window.session.save_now()
    assert [p.parent for p in tmp_path.rglob("*_labels.tif")] == [folder / "labels"]  # nothing written outside


def test_a_different_image_never_shows_a_removed_images_strokes(window, tmp_path, image):
    """Issue 13 case 7: labels belong to the pixels they were painted on."""
    folder = tmp_path / "p"
    window.open_project(folder)
    window.open_image(image("a.tif"))
    mouse_stroke(window, [(10, 10), (10, 50)])
    window.session.remove_image(0)
    assert window.session.save_now()
    other = tmp_path / "elsewhere" / "a.tif"
    other.parent.mkdir()
    tifffile.imwrite(other, np.zeros((256, 256), np.uint8) + 3)
    window.open_image(other)
    assert not labels_of(window).any()
    window.open_image(image("a.tif"))  # the same image again: its strokes are back
    assert labels_of(window)[10, 30] == 2
    # An image file replaced by another one of the same shape: its labels are not shown on it, and kept.
    assert window.session.save_now()
    tifffile.imwrite(image("a.tif"), np.ones((256, 256), np.uint8))
    assert window.open_project(folder)
    assert "not the image its labels" in window.last_error[1]
    assert tifffile.imread(folder / "labels" / "a_labels.tif")[10, 30] == 2


def test_class_300_is_painted_saved_and_read_back(window, tmp_path, image):
    """Issue 13 case 5: past 255 classes labels are uint16 everywhere, never wrapped."""
    folder = tmp_path / "p"
    window.open_project(folder)
    window.open_image(image("000.tif"))
    while len(window.session.classes) < 300:
        window.session.class_editing.add()
    window.session.set_active_class(299)
    mouse_stroke(window, [(10, 10)])
    assert labels_of(window)[10, 10] == 300
    assert window.session.save_now()
    assert tifffile.imread(folder / "labels" / "000_labels.tif")[10, 10] == 300
    window.session.close()
    assert window.open_project(folder)
    assert labels_of(window)[10, 10] == 300


def test_an_unexpected_autosave_failure_is_reported(qtbot, tmp_path):
    """Issue 13 case 19: the writer thread reports any failure (here a NUL in a path) instead of dying."""
    from unet_studio.gui.autosaver import AutoSaver
    from unet_studio.gui.project_files import SaveJob, write_job

    job = SaveJob(tmp_path / "p", "{}", [(None, 1, tmp_path / "p" / "labels" / "a\x00_labels.tif",
                                          np.zeros((1, 4, 4), np.uint8))])
    saver = AutoSaver(lambda: job, write_job)
    with qtbot.waitSignal(saver.finished, timeout=5000) as blocker:
        saver.save_in_background()
    done, error = blocker.args
    assert done == [] and "null" in error
    saver.wait()


def test_accepted_prediction_flags_survive_save_and_reopen(qtbot, window, tmp_path, image):
    """Pixels from Accept prediction stay out of validation after the project is closed and opened again."""
    from unet_studio.gui.main_window import MainWindow

    folder = tmp_path / "project"
    window.open_project(folder)
    window.open_image(image("000.tif"))
    labels = window.session.current.labels
    labels.set_region(0, (0, 64, 0, 64), 2, accepted=True)  # as Accept prediction writes
    mouse_stroke(window, [(10, 100), (120, 100)])  # a person's stroke elsewhere: not flagged
    flags = labels.accepted.copy()
    assert flags[0, :64, :64].all() and flags.sum() == 64 * 64
    window.close()  # saves on close
    accepted_file = folder / "labels" / "000_accepted.tif"
    assert accepted_file.is_file()

    again = MainWindow()
    qtbot.addWidget(again)
    assert again.open_project(folder)
    reopened = again.session.current.labels
    np.testing.assert_array_equal(reopened.accepted, flags)
    np.testing.assert_array_equal(reopened.data, labels.data)
    # Painting over every accepted pixel makes them the person's: the flags file goes on the next save.
    again.session.set_active_class(1)
    again.tools.set_brush_size(40)
    for y in range(0, 70, 10):
        mouse_stroke(again, [(y, 0), (y, 70)])
    assert reopened.accepted is None or not reopened.accepted.any()
    again.close()
    assert not accepted_file.exists()
    assert (folder / "labels" / "000_labels.tif").is_file()
