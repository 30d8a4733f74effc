"""File > Import Labels of files made elsewhere (issue 17, item 3): a Fiji 0/255 mask, an object label
image, a stack; values are mapped to classes through a dialog, the import is one undo step and autosaves."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PySide6 import QtCore, QtWidgets

from unet_studio.core.labels import LabelMapping
from unet_studio.gui.panels.import_labels_dialog import ImportLabelsDialog

from gui_helpers import labels_of, mouse_stroke


def nuclei_mask(sample_512) -> np.ndarray:
    """A Fiji-style binary mask of the sample's nuclei: 0 and 255."""
    image = tifffile.imread(sample_512)
    return np.where(image > image.mean() + image.std(), 255, 0).astype(np.uint8)


def answer_dialog(qtbot, change=None, accept=True):
    """Answer the next modal import dialog: optionally change it, then Import (or Cancel). Returns what it saw."""
    seen = {}

    def answer():
        dialog = QtWidgets.QApplication.activeModalWidget()
        assert isinstance(dialog, ImportLabelsDialog)
        seen["proposal"] = dialog.mapping()
        seen["rows"] = sorted(dialog.value_combos)
        seen["others"] = dialog.others_combo is not None
        if change is not None:
            change(dialog)
        (dialog.accept if accept else dialog.reject)()

    QtCore.QTimer.singleShot(0, answer)
    return seen


@pytest.fixture
def qtbot_tmp(qtbot, tmp_path):
    qtbot.tmp_path = tmp_path
    return qtbot


def test_fiji_binary_mask_is_imported_as_background_and_foreground(window, qtbot_tmp, sample_512, tmp_path):
    window.open_image(sample_512)
    window.session.set_active_class(0)
    mouse_stroke(window, [(20, 20), (20, 60)])  # something painted before: the import replaces it, undoably
    painted = labels_of(window).copy()
    mask = nuclei_mask(sample_512)
    path = tmp_path / "mask.tif"
    tifffile.imwrite(path, mask)
    seen = answer_dialog(qtbot_tmp)  # the real dialog, modal, answered with its proposal
    window.actions.import_labels(path)
    assert window.last_error is None
    assert seen["proposal"] == LabelMapping({0: 1, 255: 2}) and seen["rows"] == [255]
    np.testing.assert_array_equal(labels_of(window), np.where(mask == 255, 2, 1))
    assert "0 -> background, 255 -> foreground" in window.statusBar().currentMessage()
    assert window.session.saving.is_scheduled()  # autosaved like a stroke
    assert window.session.editing.undo()  # one undo step
    np.testing.assert_array_equal(labels_of(window), painted)


def test_zero_can_mean_unlabelled(window, qtbot_tmp, sample_512, tmp_path):
    window.open_image(sample_512)
    mask = nuclei_mask(sample_512)
    path = tmp_path / "mask.tif"
    tifffile.imwrite(path, mask)
    answer_dialog(qtbot_tmp, change=lambda dialog: dialog.zero_unlabelled.setChecked(True))
    window.actions.import_labels(path)
    np.testing.assert_array_equal(labels_of(window), np.where(mask == 255, 2, 0))


def test_cancel_changes_nothing(window, qtbot_tmp, sample_512, tmp_path):
    window.open_image(sample_512)
    path = tmp_path / "mask.tif"
    tifffile.imwrite(path, nuclei_mask(sample_512))
    answer_dialog(qtbot_tmp, accept=False)
    window.actions.import_labels(path)
    assert labels_of(window).max() == 0 and not window.session.current.labels.can_undo
    assert "cancelled" in window.statusBar().currentMessage()


@pytest.mark.parametrize("dtype", [np.uint16, np.int32])
def test_object_label_image_is_offered_all_objects_as_foreground(window, qtbot_tmp, sample_512, tmp_path, dtype):
    from scipy import ndimage as ndi

    window.open_image(sample_512)
    objects, count = ndi.label(nuclei_mask(sample_512))
    assert count > 16
    objects = (objects * 1000).astype(dtype)  # object numbers far above any class number
    path = tmp_path / "objects.tif"
    tifffile.imwrite(path, objects)
    seen = answer_dialog(qtbot_tmp)
    window.actions.import_labels(path)
    assert seen["others"] and seen["rows"] == []  # one row: "all non-zero values"
    np.testing.assert_array_equal(labels_of(window), np.where(objects > 0, 2, 1))


def test_few_values_are_listed_and_can_all_become_foreground(window, qtbot_tmp, sample_512, tmp_path):
    window.open_image(sample_512)
    values = np.zeros((512, 512), np.uint8)
    values[10:50, 10:50], values[100:150, 100:150], values[200:220, 300:400] = 3, 9, 12
    path = tmp_path / "three objects.tif"
    tifffile.imwrite(path, values)

    def change(dialog):
        dialog.value_combos[9].setCurrentIndex(0)  # value 9 -> unlabelled
        dialog.all_nonzero_to_foreground()
        dialog.value_combos[12].setCurrentIndex(1)  # then 12 -> background

    seen = answer_dialog(qtbot_tmp, change=change)
    window.actions.import_labels(path)
    assert seen["rows"] == [3, 9, 12]
    labels = labels_of(window)
    assert labels[20, 20] == 2 and labels[120, 120] == 2 and labels[210, 350] == 1 and labels[300, 5] == 1


def test_a_stack_of_masks_is_one_undo_step(window, qtbot_tmp, sample, tmp_path):
    window.open_image(sample)
    stack = tifffile.imread(sample)
    masks = np.where(stack > stack.mean(), 255, 0).astype(np.uint8)
    path = tmp_path / "masks.tif"
    tifffile.imwrite(path, masks)
    answer_dialog(qtbot_tmp)
    window.actions.import_labels(path)
    volume = window.session.current.labels
    np.testing.assert_array_equal(volume.data, np.where(masks == 255, 2, 1))
    window.session.editing.undo()
    assert volume.data.max() == 0 and not volume.can_undo


def test_labels_in_the_project_convention_import_without_questions(window, sample_512, tmp_path):
    window.open_image(sample_512)
    values = np.zeros((512, 512), np.uint8)
    values[:100], values[300:] = 1, 2
    path = tmp_path / "classes.tif"
    tifffile.imwrite(path, values)
    window.actions.label_mapping_chooser = lambda request: pytest.fail("no question for the project's own values")
    window.actions.import_labels(path)
    np.testing.assert_array_equal(labels_of(window), values)


def test_menu_import_labels_with_an_injected_chooser(window, sample_512, tmp_path, monkeypatch):
    window.open_image(sample_512)
    mask = nuclei_mask(sample_512)
    path = tmp_path / "mask.tif"
    tifffile.imwrite(path, mask)
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    asked = []
    window.actions.label_mapping_chooser = lambda request: asked.append(request.kind) or request.proposal(False)
    action = next(a for a in window.menuBar().actions()[0].menu().actions() if "Import Labels" in a.text())
    action.trigger()
    assert asked == ["mask"]
    np.testing.assert_array_equal(labels_of(window), np.where(mask == 255, 2, 0))


def test_dialog_on_its_own(qtbot, tmp_path):
    from unet_studio.gui.label_import import LabelImport

    request = LabelImport(tmp_path / "m.tif", {0: np.array([[0, 255]], np.uint8)}, np.array([0, 255]),
                          ["background", "foreground", "membrane"])
    dialog = ImportLabelsDialog(request)
    qtbot.addWidget(dialog)
    assert dialog.mapping() == LabelMapping({0: 1, 255: 2})
    dialog.value_combos[255].setCurrentIndex(3)
    dialog.zero_unlabelled.setChecked(True)
    assert dialog.mapping() == LabelMapping({0: 0, 255: 3})
