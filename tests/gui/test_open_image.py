"""Issue 17 item 7: File > Open Image (Ctrl+O), a new project for an image of another kind, and "Predict all"
saying which images it runs on."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtTest import QTest

from gui_helpers import drop_files, threshold_model
from unet_studio.core import project as proj
from unet_studio.core.io import read_image
from unet_studio.gui.image_kind import ImageKind, background_of, dtype_family, kind_differences

NEW, ADD = "Open in a new project", "Add to this project"


# -- the pure comparison -------------------------------------------------------------------------------------

GREY = ImageKind(1, "integer", 256, 256)


@pytest.mark.parametrize("other, expected", [
    (ImageKind(1, "integer", 256, 256), []),
    (ImageKind(1, "integer", 512, 700), []),                      # another size, same size class
    (ImageKind(1, "integer", 1024, 1024), []),                    # 16 x the pixels: still within
    (ImageKind(3, "integer", 256, 256), ["3 channels instead of 1"]),
    (ImageKind(1, "float", 256, 256), ["float pixels instead of integer"]),
    (ImageKind(1, "integer", 2048, 2048), ["2048 x 2048 pixels instead of 256 x 256"]),
    (ImageKind(1, "integer", 32, 32), ["32 x 32 pixels instead of 256 x 256"]),
    (ImageKind(2, "float", 256, 256), ["2 channels instead of 1", "float pixels instead of integer"]),
])
def test_kind_differences(other, expected):
    assert kind_differences(other, GREY) == expected


def test_pixel_size_counts_only_when_both_are_calibrated():
    fluorescence = ImageKind.of((1, 1, 256, 256), np.uint16, (0.65, 0.65), "µm")
    electron = ImageKind.of((1, 1, 256, 256), np.uint8, (4.0, 4.0), "nm")
    uncalibrated = ImageKind.of((1, 1, 256, 256), np.uint8, None, "")
    assert electron.pixel_um == pytest.approx(0.004) and uncalibrated.pixel_um is None
    assert kind_differences(electron, fluorescence) == ["0.004 µm pixels instead of 0.65 µm"]
    assert kind_differences(uncalibrated, fluorescence) == []
    assert kind_differences(ImageKind.of((1, 1, 256, 256), np.uint8, (1.0, 1.0), "micron"), fluorescence) == []


@pytest.mark.parametrize("dtype, family", [(np.uint8, "integer"), (np.uint16, "integer"), (np.int32, "integer"),
                                           (bool, "integer"), (np.float32, "float"), (np.float64, "float"),
                                           (np.complex64, "other")])
def test_dtype_family(dtype, family):
    assert dtype_family(dtype) == family


# -- the window -------------------------------------------------------------------------------------------

@pytest.fixture
def images(tmp_path, sample_stack):
    """Image files: two of the bundled sample's kind (1 channel, uint8, 256 x 256) and two of other kinds."""
    folder = tmp_path / "images"
    folder.mkdir()
    tifffile.imwrite(folder / "nuclei_a.tif", sample_stack[0])
    tifffile.imwrite(folder / "nuclei_b.tif", sample_stack[1])
    tifffile.imwrite(folder / "colour.tif", np.stack([sample_stack[0]] * 3, -1), photometric="rgb")
    tifffile.imwrite(folder / "float.tif", sample_stack[0].astype(np.float32) / 255)
    tifffile.imwrite(folder / "inverted.tif", 255 - sample_stack[0])  # bright background, dark objects (EM-like)
    return {path.stem: path for path in folder.iterdir()}


def _project_with(window, tmp_path, path):
    """A saved project holding ``path``, with a stroke painted (so that there is something to keep)."""
    window.open_project(tmp_path / "project")
    window.open_image(path)
    window.session.current.labels.data[0, 5, 5] = 1
    window.session.current.forced_dirty = True
    return tmp_path / "project"


def test_ctrl_o_opens_an_image_and_ctrl_shift_o_a_project(window, qtbot, images):
    asked_files, asked_folders = [], []
    window.choose_files = lambda title: asked_files.append(title) or [images["nuclei_a"]]
    window.choose_folder = lambda title: asked_folders.append(title) or None
    QTest.keySequence(window, QtGui.QKeySequence("Ctrl+O"))
    assert asked_files == ["Open image"] and asked_folders == []
    assert [state.name for state in window.session.images] == ["nuclei_a"]  # an empty project: just added
    assert window.asked == []
    QTest.keySequence(window, QtGui.QKeySequence("Ctrl+Shift+O"))
    assert asked_folders == ["Open a project folder"]


def test_an_image_of_another_kind_is_offered_a_new_project(window, tmp_path, images):
    folder = _project_with(window, tmp_path, images["nuclei_a"])
    window.choose_files = lambda title: [images["colour"]]
    QTest.keySequence(window, QtGui.QKeySequence("Ctrl+O"))  # the default answer: a new project
    assert window.asked == ["Open image"]
    assert window.session.is_untitled and [state.name for state in window.session.images] == ["colour"]
    assert window.windowTitle() == "UNet Studio - untitled project"
    saved = proj.load_project(folder)  # the first project was saved on the way, with its stroke
    assert [entry.name for entry in saved.images] == ["nuclei_a"]
    assert tifffile.imread(folder / "labels" / "nuclei_a_labels.tif")[5, 5] == 1


def test_another_kind_added_to_the_project_when_asked(window, tmp_path, images):
    _project_with(window, tmp_path, images["nuclei_a"])
    window.answers["Open image"] = ADD
    window.actions.open_paths([images["float"]])
    assert [state.name for state in window.session.images] == ["nuclei_a", "float"]
    assert not window.session.is_untitled


def test_cancel_leaves_the_project_as_it_was(window, tmp_path, images):
    folder = _project_with(window, tmp_path, images["nuclei_a"])
    window.answers["Open image"] = None
    window.actions.open_paths([images["colour"]])
    assert window.session.folder == folder.resolve()
    assert [state.name for state in window.session.images] == ["nuclei_a"]


def test_the_same_kind_is_added_without_a_question(window, tmp_path, images):
    _project_with(window, tmp_path, images["nuclei_a"])
    window.actions.open_paths([images["nuclei_b"]])
    assert window.asked == [] and [state.name for state in window.session.images] == ["nuclei_a", "nuclei_b"]
    assert "same kind" in window.statusBar().currentMessage()


def test_background_of_tells_fluorescence_from_electron_microscopy(sample_stack):
    assert background_of(sample_stack[0]) == "dark"
    assert background_of(255 - sample_stack[0]) == "bright"
    assert background_of(np.full((64, 64), 7, np.uint16)) is None  # flat: no look to judge


def test_real_em_and_fluorescence_differ_in_look(data_dir):
    with read_image(data_dir / "isbi2012" / "images" / "000.tif") as stack:
        em = ImageKind.of_stack(stack)
    with read_image(data_dir / "dsb2018" / "images" / "000.tif") as stack:
        nuclei = ImageKind.of_stack(stack)
    assert (em.background, nuclei.background) == ("bright", "dark")
    assert any("background" in reason for reason in kind_differences(em, nuclei))


def test_an_image_of_another_look_is_offered_a_new_project(window, tmp_path, images):
    """The issue's case: an EM slice (same channels, dtype and size as the nuclei) is another kind."""
    _project_with(window, tmp_path, images["nuclei_a"])
    window.answers["Open image"] = None
    window.actions.open_paths([images["inverted"]])
    assert window.asked == ["Open image"]
    assert [state.name for state in window.session.images] == ["nuclei_a"]


def test_add_images_adds_without_a_question(window, tmp_path, images):
    _project_with(window, tmp_path, images["nuclei_a"])
    window.choose_files = lambda title: [images["colour"]] if title == "Add images to this project" else []
    QTest.keySequence(window, QtGui.QKeySequence("Ctrl+I"))  # the person said "add": no question of kind
    assert window.asked == [] and [state.name for state in window.session.images] == ["nuclei_a", "colour"]


def test_a_dropped_image_of_another_kind_asks_too(window, tmp_path, images):
    _project_with(window, tmp_path, images["nuclei_a"])
    window.answers["Open image"] = None
    drop_files(window.canvas.view.viewport(), QtCore.QPointF(40, 40), [images["colour"]])
    assert window.asked == ["Open image"] and len(window.session.images) == 1


def test_the_untouched_start_up_sample_is_replaced(window, sample, images):
    window.open_image(sample)  # what the application shows at start
    window.choose_files = lambda title: [images["nuclei_a"]]
    QTest.keySequence(window, QtGui.QKeySequence("Ctrl+O"))
    assert window.asked == [] and [state.name for state in window.session.images] == ["nuclei_a"]


def test_an_untitled_project_with_strokes_asks_to_save_before_a_new_project(window, images):
    window.open_image(images["nuclei_a"])
    window.session.current.labels.data[0, 5, 5] = 1
    window.answers["Save the project?"] = QtWidgets.QMessageBox.StandardButton.Cancel
    window.actions.open_paths([images["colour"]])
    assert window.asked == ["Open image", "Save the project?"]
    assert [state.name for state in window.session.images] == ["nuclei_a"]  # cancelled: nothing changed
    window.session.discard_untitled()


def test_the_shortcuts_help_names_the_file_and_predict_shortcuts(window):
    from unet_studio.gui.main_window import SHORTCUTS

    menus = [action.menu() for action in window.menuBar().actions()]
    for menu in (m for m in menus if m.title() in ("&File", "&Predict")):
        for action in menu.actions():
            key = action.shortcut().toString()
            if key and key != "Ctrl+Q":
                assert key in SHORTCUTS, (action.text(), key)
    assert "Ctrl+O open image" in SHORTCUTS and "Ctrl+Shift+O open project" in SHORTCUTS


# -- Predict all: which images ----------------------------------------------------------------------------


def test_predict_all_says_which_images_and_runs_on_the_choice(window, qtbot, tmp_path, sample, images):
    window.open_project(tmp_path / "project")
    window.open_image(images["nuclei_a"])
    window.open_image(sample)  # two slices
    threshold_model(window)
    offered = []
    window.choose = lambda title, text, options, default: offered.append((title, text, options, default))
    window.overlay_panel.predict_all_button.click()  # cancelled
    assert not window.prediction.is_running()
    title, text, options, default = offered[0]
    assert title == "Predict which images?" and "nuclei_a, sample_nuclei" in text
    assert options == ["This slice (sample_nuclei, slice 1 of 2)", "This stack (sample_nuclei, all 2 slices)",
                       "All 2 images of the project (3 slices)"]
    assert default == options[-1]
    window.choose = lambda title, text, options, default: options[0]
    with qtbot.waitSignal(window.prediction.finished, timeout=60000) as blocker:
        window.overlay_panel.predict_all_button.click()
    assert blocker.args == ["predicted 1 slice(s)"]
    assert sorted(window.session.current.probabilities) == [0] and not window.session.images[0].probabilities
    window.choose = lambda title, text, options, default: default
    with qtbot.waitSignal(window.prediction.finished, timeout=60000) as blocker:
        QTest.keySequence(window, QtGui.QKeySequence("Ctrl+Shift+P"))
    assert blocker.args == ["predicted 3 slice(s)"] and window.session.images[0].probabilities


def test_predict_all_without_a_model_says_so_before_asking(window, tmp_path, images):
    window.open_image(images["nuclei_a"])
    window.open_image(images["nuclei_b"])
    window.overlay_panel.predict_all_button.click()
    assert window.asked == [] and "no model" in window.last_error[1]
