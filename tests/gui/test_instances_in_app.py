"""Objects trained in the application as on the command line (issue 16, item 4): an object label image imported
as objects keeps its instances (saved, reloaded, undone with the import), a painted boundary class cuts touching
objects apart, and the training set the application builds equals ``load_folder(..., instances=True)``'s."""

from __future__ import annotations

import numpy as np
import tifffile
from PySide6 import QtCore, QtWidgets
from scipy import ndimage as ndi

from unet_studio.core.config import TrainConfig
from unet_studio.core.train import load_folder
from unet_studio.core.train.setup import border_maps
from unet_studio.gui.panels.classes_panel import BOUNDARY_TEXT
from unet_studio.gui.panels.import_labels_dialog import ImportLabelsDialog

from gui_helpers import labels_of, mouse_stroke

WEIGHTS = TrainConfig(use_border_weights=True)


def answer_as_objects(qtbot, seen: dict) -> None:
    """Answer the next import dialog with its "Objects (instances)" choice (the real, modal dialog)."""

    def answer():
        dialog = QtWidgets.QApplication.activeModalWidget()
        assert isinstance(dialog, ImportLabelsDialog)
        seen["offered"] = dialog.as_objects is not None and dialog.as_objects.text() == dialog.OBJECTS_TEXT
        seen["default"] = dialog.as_objects.isChecked()  # too many values to list: objects by default
        dialog.as_objects.click()
        dialog.accept()

    QtCore.QTimer.singleShot(0, answer)


def capture_training(window, qtbot) -> object:
    """Start training from the Training panel with a trainer that only keeps the training set it is given."""
    seen = {}

    def capture(dataset, model_config, train_config, **kwargs):
        seen["dataset"], seen["config"] = dataset, train_config
        return
        yield  # pragma: no cover

    window.training.trainer = capture
    with qtbot.waitSignal(window.training.finished, timeout=20000):
        window.training_panel.train_button.click()
    assert seen["config"].use_border_weights  # the paper's border weights, as `unet-studio train --instances`
    assert seen["config"].loss == "dice_ce"  # and its loss (core.presets.for_instances)
    return seen["dataset"]


def assert_same_training(app, cli) -> None:
    """Same images, targets and border weights (the paper's w0, sigma) item by item."""
    assert len(app) == len(cli)
    for index in range(len(cli)):
        np.testing.assert_allclose(app.images[index], cli.images[index])
        np.testing.assert_array_equal(app.labels[index], cli.labels[index])
    np.testing.assert_allclose(np.stack(border_maps(app, app.labels, WEIGHTS)),
                               np.stack(border_maps(cli, cli.labels, WEIGHTS)), atol=1e-5)


def test_an_instance_import_trains_what_the_command_line_trains(window, qtbot, sample, sample_stack, tmp_path):
    objects = np.stack([ndi.label(ndi.binary_opening(s > s.mean() + s.std()))[0] for s in sample_stack])
    # Each nucleus cut in touching halves: objects that connected pieces of the foreground cannot separate.
    halves = (np.arange(objects.shape[2]) % 16 >= 8)[None, None, :]
    objects = np.where(objects > 0, objects * 6 + 3 * halves, 0).astype(np.uint16)  # numbers need not be 1..N
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    tifffile.imwrite(tmp_path / "images" / "nuclei.tif", sample_stack, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "labels" / "nuclei.tif", objects, imagej=True, metadata={"axes": "ZYX"})
    folder = tmp_path / "project"
    window.open_project(folder)
    window.open_image(tmp_path / "images" / "nuclei.tif")
    seen = {}
    answer_as_objects(qtbot, seen)
    window.actions.import_labels(tmp_path / "labels" / "nuclei.tif")
    assert window.last_error is None and seen["offered"] and seen["default"]
    assert "objects" in window.statusBar().currentMessage()
    volume = window.session.current.labels
    np.testing.assert_array_equal(volume.data, np.where(objects > 0, 2, 1))
    assert volume.instances_slice(1).max() == len(np.unique(objects[1])) - 1  # renumbered 1..N, none lost

    app = capture_training(window, qtbot)
    cli, _, _ = load_folder(tmp_path / "images", tmp_path / "labels", instances=True)
    assert_same_training(app, cli)

    window.session.saving.save_now()
    assert (folder / "labels" / "nuclei_instances.tif").is_file()
    window.session.editing.undo()  # the import goes, and its instances with it
    assert not volume.data.any() and volume.instances_slice(0) is None
    window.session.saving.save_now()
    assert not (folder / "labels" / "nuclei_instances.tif").exists()
    window.session.editing.redo()
    window.close()  # saves on close

    from unet_studio.gui.main_window import MainWindow

    again = MainWindow()
    qtbot.addWidget(again)
    assert again.open_project(folder)
    reopened = again.session.current.labels
    for s in range(2):
        assert np.array_equal(reopened.instances_slice(s) > 0, objects[s] > 0)
    again.training.config_hook = window.training.config_hook
    assert_same_training(capture_training(again, qtbot), cli)
    again.training.shutdown()


def test_a_painted_boundary_separates_touching_objects_as_the_command_line(window, qtbot, tmp_path):
    """Foreground painted over two touching discs and a boundary line painted between them with the mouse:
    the application trains the line as background with the border weights of two objects, as the command line
    does for the instance image of the two discs."""
    size, half = 128, 64
    yy, xx = np.mgrid[:size, :size]
    left = (yy - half) ** 2 + (xx - half + 20) ** 2 <= 24 ** 2
    right = (yy - half) ** 2 + (xx - half - 20) ** 2 <= 24 ** 2
    objects = np.zeros((size, size), np.uint16)
    objects[left & (xx < half)], objects[right & (xx > half)] = 1, 2  # a one-pixel gap at x = half
    blob = (left & (xx < half)) | (right & (xx >= half))  # the two discs touching: one blob
    image = np.where(blob, 180, 20).astype(np.uint8)
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    tifffile.imwrite(tmp_path / "images" / "discs.tif", image)
    tifffile.imwrite(tmp_path / "labels" / "discs.tif", objects)
    window.open_image(tmp_path / "images" / "discs.tif")
    mask = tmp_path / "blob.tif"
    tifffile.imwrite(mask, np.where(blob, 255, 0).astype(np.uint8))
    window.actions.label_mapping_chooser = lambda request: request.proposal()  # 0 -> background, 255 -> fg
    window.actions.import_labels(mask)
    assert labels_of(window)[half, half] == 2

    action = next(a for a in window.classes_panel.list.actions() if a.text() == BOUNDARY_TEXT)
    action.trigger()
    classes = window.session.classes
    assert classes[-1].boundary and window.session.active_class == len(classes) - 1
    window.tools.set_brush_size(1)
    mouse_stroke(window, [(half - 30, half), (half, half), (half + 30, half)])  # the line where they touch
    painted = labels_of(window)
    assert (painted[:, half][blob[:, half]] == 3).all() and (painted[:, half - 1] != 3).all()

    app = capture_training(window, qtbot)
    cli, _, _ = load_folder(tmp_path / "images", tmp_path / "labels", instances=True)
    # Boundary pixels are background; the boundary class (last) is not an output: the model stays bg/objects.
    assert app.n_classes == 2 and set(np.unique(app.labels[0])) == {1, 2}
    assert_same_training(app, cli)
    weights = border_maps(app, app.labels, WEIGHTS)[0]
    assert weights[half, half] > 0.9 * WEIGHTS.border_weight_w0

    window.session.ensure_folder()
    window.session.saving.save_now()
    text = (window.session.folder / "project.json").read_text()
    assert '"boundary": true' in text
    window.session.discard_untitled()


def test_boundary_pixels_count_as_background_for_the_objects_on_screen(window, qtbot, tmp_path):
    """A prediction whose boundary channel wins on a line across a rod: the objects overlay leaves the line out
    (the boundary class is background for objects), so the rod comes out as two objects."""
    image = np.zeros((96, 96), np.uint8)
    image[40:56, 10:86] = 200
    path = tmp_path / "rod.tif"
    tifffile.imwrite(path, image)
    window.open_image(path)
    window.classes_panel.add_boundary_action.trigger()
    probs = np.zeros((3, 96, 96), np.float32)
    probs[0] = 1.0
    probs[:, 40:56, 10:86] = np.array([0.05, 0.9, 0.05])[:, None, None]
    probs[:, 40:56, 47:49] = np.array([0.1, 0.3, 0.6])[:, None, None]  # the boundary wins on the cut
    window.session.slices.set_probabilities(0, 0, probs)
    with qtbot.waitSignal(window.binder.objects.ready, timeout=60000):
        window.view_state.update(prediction_mode="objects")
    shown = window.binder.objects_shown()
    assert shown is not None
    assert not shown.objects[:, 47:49].any()
    assert shown.count == 2 and shown.objects[48, 30] != shown.objects[48, 70]


def test_training_with_a_boundary_class_runs_and_follows_new_strokes(window, qtbot, tmp_path):
    """A real (tiny) training run with a boundary class: boundary strokes painted while it runs reach the
    training set as background, with the border weights of the objects they separate."""
    from gui_helpers import tiny_configs

    image = np.zeros((96, 96), np.uint8)
    image[30:66, 10:86] = 200
    path = tmp_path / "rods.tif"
    tifffile.imwrite(path, image)
    window.open_image(path)
    mask = tmp_path / "mask.tif"
    tifffile.imwrite(mask, np.where(image > 0, 255, 0).astype(np.uint8))
    window.actions.label_mapping_chooser = lambda request: request.proposal()
    window.actions.import_labels(mask)
    window.classes_panel.add_boundary_action.trigger()
    window.tools.set_brush_size(1)
    mouse_stroke(window, [(25, 30), (70, 30)])
    window.training.config_hook = lambda m, t: tiny_configs(m, t, epochs=1000)
    window.training_panel.train_button.click()
    qtbot.waitUntil(lambda: window.training._dataset is not None, timeout=20000)
    dataset = window.training._dataset
    assert dataset.instances[0].max() == 2  # the first line cut the rod in two
    version = dataset.version
    mouse_stroke(window, [(25, 60), (70, 60)])  # a second cut while training runs
    qtbot.waitUntil(lambda: dataset.version > version, timeout=5000)
    assert dataset.instances[0].max() == 3 and dataset.snapshot()[0][0][48, 60] == 1
    with qtbot.waitSignal(window.training.finished, timeout=30000) as blocker:
        window.training.stop()
    assert blocker.args == [True] and window.last_error is None
    from unet_studio.core.model import read_model_info

    info = read_model_info(window.session.model_dir)[0]
    assert info.class_names == ["background", "foreground"]  # the boundary is trained as background
    window.session.discard_untitled()


def test_the_dialog_offers_objects_for_object_label_images_only(qtbot, tmp_path):
    from unet_studio.core.labels import LabelMapping
    from unet_studio.gui.label_import import LabelImport

    names, boundary = ["background", "cells", "boundary"], [False, False, True]
    many = np.arange(40, dtype=np.uint16).reshape(5, 8)
    request = LabelImport(tmp_path / "objects.tif", {0: many}, np.unique(many), names, boundary)
    dialog = ImportLabelsDialog(request)
    qtbot.addWidget(dialog)
    assert dialog.as_objects.isChecked()  # 39 objects: imported as objects unless the person says otherwise
    assert dialog.mapping() == LabelMapping({0: 1}, 2, instances=True)  # objects -> cells, never the boundary
    assert not dialog.others_combo.isEnabled()
    dialog.as_classes.click()
    assert dialog.others_combo.isEnabled() and not dialog.mapping().instances
    few = np.array([[0, 3, 9, 12]], np.uint8)  # a few values: offered, classes by default
    dialog = ImportLabelsDialog(LabelImport(tmp_path / "few.tif", {0: few}, np.unique(few), names, boundary))
    qtbot.addWidget(dialog)
    assert dialog.as_objects is not None and not dialog.as_objects.isChecked()
    mask = np.array([[0, 255]], np.uint8)  # a mask: no objects to keep
    dialog = ImportLabelsDialog(LabelImport(tmp_path / "mask.tif", {0: mask}, np.unique(mask), names, boundary))
    qtbot.addWidget(dialog)
    assert dialog.as_objects is None
