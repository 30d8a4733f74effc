"""Issue 17 item 8: the first Save of an untitled project asks where; autosave into the recovery folder keeps
the work safe but the project stays visibly unsaved until the person chooses a folder."""

from __future__ import annotations

import tifffile
from PySide6 import QtGui, QtWidgets
from PySide6.QtTest import QTest

from gui_helpers import mouse_stroke
from unet_studio.core import project as proj

Button = QtWidgets.QMessageBox.StandardButton


def _untitled_with_a_stroke(window, qtbot, sample):
    window.open_image(sample)
    window.session.autosaver.set_delays(50)
    with qtbot.waitSignal(window.session.saved, timeout=5000):  # the recovery copy
        mouse_stroke(window, [(10, 10), (10, 50)])
    return window.session.folder


def test_autosave_of_an_untitled_project_keeps_it_unsaved(window, qtbot, user_dirs, sample):
    scratch = _untitled_with_a_stroke(window, qtbot, sample)
    assert scratch.parent == user_dirs / "untitled" and (scratch / "labels").is_dir()  # work is safe
    assert window.windowTitle() == "UNet Studio - untitled project *"  # but not saved anywhere chosen
    assert "Saved to" not in window.statusBar().currentMessage()
    assert scratch not in proj.load_recent()  # no scratch folder in Open Recent
    window.session.discard_untitled()


def test_first_save_asks_where_and_cancel_changes_nothing(window, qtbot, tmp_path, sample):
    scratch = _untitled_with_a_stroke(window, qtbot, sample)
    asked = []
    window.choose_folder = lambda title: asked.append(title) or None
    QTest.keySequence(window, QtGui.QKeySequence.StandardKey.Save)
    assert asked == ["Save the project in a folder"]
    assert window.session.is_untitled and window.session.folder == scratch
    assert window.windowTitle().endswith("*")
    target = tmp_path / "my project"
    window.choose_folder = lambda title: asked.append(title) or target
    QTest.keySequence(window, QtGui.QKeySequence.StandardKey.Save)
    assert window.session.folder == target.resolve() and not window.session.is_untitled
    assert window.windowTitle() == "UNet Studio - my project"
    assert tifffile.imread(target / "labels" / "sample_nuclei_labels.tif")[0, 10, 30] == 2
    assert not scratch.exists() and target.resolve() in proj.load_recent()
    # Later saves go to that folder without a question.
    mouse_stroke(window, [(100, 100)])
    assert window.windowTitle().endswith("*")
    QTest.keySequence(window, QtGui.QKeySequence.StandardKey.Save)
    assert len(asked) == 2 and not window.session.is_dirty and not window.windowTitle().endswith("*")
    assert tifffile.imread(target / "labels" / "sample_nuclei_labels.tif")[0, 100, 100] == 2


def test_closing_an_untitled_project_with_changes_still_asks(window, qtbot, sample):
    _untitled_with_a_stroke(window, qtbot, sample)
    window.answers["Save the project?"] = Button.Cancel
    window.close()
    assert window.isVisible() and window.asked == ["Save the project?"]
    window.answers["Save the project?"] = Button.Discard
    window.close()
    assert not window.isVisible()


def test_an_untitled_project_with_only_images_has_no_star(window, sample):
    window.open_image(sample)  # what the application shows at start
    assert window.windowTitle() == "UNet Studio - untitled project"
