"""Bad input in the application (issue #7): a message that says what is wrong and what to do, the window
stays usable, and nothing already painted is lost (still in the labels, and still saved).

Messages are read where the person sees them: ``window.last_error`` holds the (title, text) of the last
message box (see ``MainWindow.show_error``). Where each item of the issue is covered:

==================================================  ===============================================
unreadable, corrupt or truncated TIFF; wrong        test_opening_bad_images_says_why_and_keeps_the_labels
extension; empty file; zero-size dimension;         (and a damaged page inside a stack:
5-D and 6-D data with unknown axes; an image        test_a_damaged_slice_shows_blank_and_says_why)
larger than RAM
image and labels of different shapes; label         test_importing_bad_labels_changes_nothing_and_says_why,
values that are not classes of the project          test_project_labels_that_do_not_fit_are_kept_and_reported
NaN or Inf in a float image; a constant image       test_nan_and_constant_images_are_shown_with_a_notice
model folder from another version or with files     test_broken_or_unfitting_model_is_reported_and_nothing_lost
missing; a model whose channels or classes do
not fit
full disk or read-only folder                       test_export_to_a_read_only_or_full_disk_says_why,
                                                    test_save_as_into_a_read_only_folder_keeps_everything,
                                                    test_project_files.py::test_failed_autosave_is_reported_...
paths with spaces and non-ASCII characters          test_paths_with_spaces_and_non_ascii_characters
a labels folder with no match for an image          (command line only: the application pairs nothing by name)
==================================================  ===============================================
"""

from __future__ import annotations

import errno
import json
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from fs_helpers import refuse_writes_under as _refuse_writes_under
from gui_helpers import labels_of, mouse_stroke

from unet_studio.core.io import stack as core_io
from unet_studio.gui.controllers.training_request import TrainingRequest

SIZE = 256


def _image(path: Path, shape=(SIZE, SIZE), dtype=np.uint16, **kwargs) -> Path:
    """Bright disks on a gradient: something to look at and to paint on."""
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    plane = 100 + xx + 800 * (((yy - 80) ** 2 + (xx - 90) ** 2) < 30**2)
    data = np.broadcast_to(plane, shape).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile warns about zero-size arrays
        tifffile.imwrite(path, data, **kwargs)
    return path


def _message(window, title: str, *patterns: str) -> str:
    assert window.last_error is not None, "no message was shown"
    shown_title, text = window.last_error
    assert shown_title == title, window.last_error
    for pattern in patterns:
        assert re.search(pattern, text, re.IGNORECASE), f"{pattern!r} not in {text!r}"
    return text


def _paint(window, y: int, x: int = 40, length: int = 40) -> None:
    window.tools.set_brush_size(5)
    mouse_stroke(window, [(y, x), (y, x + length)])
    assert labels_of(window)[y, x + length // 2] == window.session.active_class + 1


def _still_usable_and_saved(window, painted: np.ndarray, y: int = 200) -> None:
    """The labels painted before are intact, painting still works, and both are saved to disk."""
    session = window.session
    np.testing.assert_array_equal(labels_of(window)[painted > 0], painted[painted > 0])
    _paint(window, y)
    assert session.save_now(), session.last_save_error
    saved = tifffile.imread(session.project.labels_path(session.current.name))
    np.testing.assert_array_equal(saved.reshape(labels_of(window).shape), labels_of(window))
    assert (saved.reshape(painted.shape)[painted > 0] == painted[painted > 0]).all()


@pytest.fixture
def painted(window, tmp_path):
    """A project with one image and a painted stroke; returns the labels painted."""
    window.open_project(tmp_path / "project")
    window.open_image(_image(tmp_path / "cells.tif"))
    assert window.last_error is None
    _paint(window, 30)
    return labels_of(window).copy()


# ---------------------------------------------------------------------------------------------- images


def _unreadable(path, monkeypatch):
    _image(path)
    real_open = open

    def refuse(file, *args, **kwargs):  # as a file without read permission (root would read it anyway)
        if Path(file) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(core_io, "open", refuse, raising=False)
    return path


def _truncated(path, monkeypatch):
    whole = _image(path.with_name("whole.tif"), shape=(3, SIZE, SIZE), photometric="minisblack").read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    return path


def _write(content: bytes, suffix: str = ".tif"):
    def make(path, monkeypatch):
        target = path.with_suffix(suffix)
        target.write_bytes(content)
        return target
    return make


def _shaped(shape, **kwargs):
    return lambda path, monkeypatch: _image(path, shape=shape, dtype=np.uint8, **kwargs)


BAD_IMAGES = {
    "unreadable": (_unreadable, r"cannot be opened \(Permission denied\)", r"check that it is readable"),
    "corrupt": (_write(b"II*\x00" + bytes(range(250)) * 3), r"damaged", r"copy or export the file again"),
    "truncated": (_truncated, r"truncated", r"copy or export the file again"),
    "wrong extension": (_write(b"ZISRAWFILE" + bytes(100), ".czi"), r"extension '\.czi'",
                        r"convert the image to TIFF"),
    "text named .tif": (_write(b"exposure 200 ms\n"), r"contains text", r"check that the right file"),
    "empty": (_write(b""), r"empty \(0 bytes\)", r"copy or export it again"),
    "zero-size dimension": (_shaped((0, 16)), r"dimension of size zero", r"export the image again"),
    "5-D unknown axes": (_shaped((2, 3, 2, 16, 16), photometric="minisblack"), r"5 dimensions .* unknown",
                         r"ImageJ hyperstack or as OME-TIFF"),
    "6-D unknown axes": (_shaped((2, 2, 2, 2, 16, 16), photometric="minisblack"), r"6 dimensions .* unknown",
                         r"ImageJ hyperstack or as OME-TIFF"),
    "larger than RAM": (None, r"needs about [\d.]+ GiB of memory, but only [\d.]+ [GM]iB is available",
                        r"crop or downsample"),
}


def test_opening_bad_images_says_why_and_keeps_the_labels(window, painted, tmp_path, monkeypatch,
                                                          larger_than_memory_tiff):
    for case, (make, problem, advice) in BAD_IMAGES.items():
        # A context, not undo(): that would also undo the user_dirs fixture's configuration folder.
        with monkeypatch.context() as patch:
            path = larger_than_memory_tiff if make is None else make(tmp_path / f"bad {case}.tif", patch)
            window.last_error = None
            window.open_image(path)
        text = _message(window, "Cannot open image", problem, advice)
        assert path.name in text, case
    assert [state.name for state in window.session.images] == ["cells"]
    assert window.canvas.raw_item.image.shape == (SIZE, SIZE)  # the image shown before is still shown
    _still_usable_and_saved(window, painted)


def test_a_damaged_slice_shows_blank_and_says_why(window, tmp_path):
    path = _image(tmp_path / "stack.tif", shape=(4, SIZE, SIZE), compression="zlib", photometric="minisblack")
    with tifffile.TiffFile(path) as tif:
        offset, count = tif.pages[2].dataoffsets[0], tif.pages[2].databytecounts[0]
    data = bytearray(path.read_bytes())
    data[offset: offset + count] = bytes(count)  # zeros are not a zlib stream: page 2 cannot be decoded
    path.write_bytes(bytes(data))
    window.open_project(tmp_path / "project")
    window.open_image(path)
    assert window.last_error is None  # the file's structure is intact: it opens
    _paint(window, 30)
    window.session.set_current_slice(2)
    _message(window, "Cannot show this slice", r"slice 2 of .*stack\.tif.*damaged", r"copy or export the file again")
    assert window.canvas.raw_item.image.shape == (SIZE, SIZE) and not window.canvas.raw_item.image.any()
    _paint(window, 60)  # its labels can still be painted
    window.session.set_current_slice(0)
    assert labels_of(window)[30, 60] == 2 and window.canvas.raw_item.image.any()
    assert window.session.save_now()
    saved = tifffile.imread(window.session.project.labels_path("stack"))
    assert saved[0, 30, 60] == 2 and saved[2, 60, 60] == 2


# ---------------------------------------------------------------------------------------------- labels


def _label_file(data, **kwargs):
    def make(path):
        tifffile.imwrite(path, data, **kwargs)
        return path
    return make


BAD_LABELS = {
    "labels of another size": (_label_file(np.ones((64, 64), np.uint8)),
                               r"the label image is 64 x 64 pixels but the image 'cells' is 256 x 256",
                               r"choose the label image made for this image"),
    # Values that are not classes are no bad input any more: they are mapped (tests/gui/test_label_import.py).
    "corrupt label file": (lambda path: (path.write_bytes(b"II*\x00" + bytes(range(250)) * 3), path)[1],
                           r"damaged", r"copy or export the file again"),
    "colour label image": (_label_file(np.zeros((SIZE, SIZE, 3), np.uint8), photometric="rgb"), r"RGB",
                           r"single-channel 8-bit or 16-bit TIFF"),
    "fractional values": (_label_file(np.full((SIZE, SIZE), 0.5, np.float32)), r"fractional values",
                          r"single-channel 8-bit or 16-bit TIFF"),
}


def test_importing_bad_labels_changes_nothing_and_says_why(window, painted, tmp_path):
    for case, (make, problem, advice) in BAD_LABELS.items():
        path = make(tmp_path / f"labels {case}.tif")
        window.last_error = None
        window.actions.import_labels(path)
        text = _message(window, "Cannot import labels", problem, advice)
        assert path.name in text, case
        np.testing.assert_array_equal(labels_of(window), painted)
    good = np.zeros((SIZE, SIZE), np.uint8)
    good[100:120, 100:140] = 1
    window.last_error = None
    window.actions.import_labels(_label_file(good)(tmp_path / "good labels.tif"))
    assert window.last_error is None
    np.testing.assert_array_equal(labels_of(window), good)
    window.session.editing.undo()  # the import is one undoable step
    np.testing.assert_array_equal(labels_of(window), painted)
    _still_usable_and_saved(window, painted)


def test_project_labels_that_do_not_fit_are_kept_and_reported(window, tmp_path):
    folder = tmp_path / "project"
    window.open_project(folder)
    for name in ("first", "second", "third"):
        window.open_image(_image(tmp_path / f"{name}.tif"))
        _paint(window, 30)
    assert window.session.save_now()
    window.open_project(tmp_path / "elsewhere")  # closes the project (saved)
    labels_dir = folder / "labels"
    tifffile.imwrite(labels_dir / "first_labels.tif", np.full((SIZE, SIZE), 7, np.uint8))  # 2 classes only
    tifffile.imwrite(labels_dir / "second_labels.tif", np.zeros((64, 64), np.uint8))  # another image's
    before = {p.name: p.read_bytes() for p in labels_dir.iterdir()}
    window.last_error = None
    assert window.open_project(folder)
    text = _message(window, "Some images could not be opened",
                    r"first_labels\.tif hold values up to 7 but the project has 2 classes; add classes",
                    r"second_labels\.tif have shape \(1, 64, 64\) but the image has \(1, 256, 256\).*move the label "
                    r"file away")
    assert "third" not in text
    assert [state.name for state in window.session.images] == ["third"]
    third = labels_of(window).copy()
    _still_usable_and_saved(window, third)
    # The files that did not fit are kept as they were, and the project still lists their images.
    assert {name: (labels_dir / name).read_bytes() for name in ("first_labels.tif", "second_labels.tif")} == {
        name: before[name] for name in ("first_labels.tif", "second_labels.tif")}
    listed = [item["name"] for item in json.loads((folder / "project.json").read_text())["images"]]
    assert listed == ["first", "second", "third"]


# ------------------------------------------------------------------------------------------ odd values


def test_nan_and_constant_images_are_shown_with_a_notice(window, tmp_path):
    window.open_project(tmp_path / "project")
    float_image = np.linspace(0, 1, SIZE * SIZE, dtype=np.float32).reshape(SIZE, SIZE)
    float_image[:20, :20] = np.nan
    float_image[50, 50] = np.inf
    float_image[51, 51] = -np.inf
    tifffile.imwrite(tmp_path / "ratio.tif", float_image)
    tifffile.imwrite(tmp_path / "blank.tif", np.full((SIZE, SIZE), 3, np.uint16))
    cases = {"ratio.tif": r"402 pixels are NaN or infinite.*Remove NaNs",
             "blank.tif": r"the image is constant \(every pixel is 3\).*check that this is the right file"}
    for name, notice in cases.items():
        window.last_error = None
        window.open_image(tmp_path / name)
        _message(window, "Check this image", re.escape(name), notice)
        assert window.session.current.name == Path(name).stem  # opened and shown
        assert window.canvas.raw_item.image.shape == (SIZE, SIZE)
        lo, hi = window.canvas.levels
        assert np.isfinite(lo) and np.isfinite(hi)
        _paint(window, 30)
        _still_usable_and_saved(window, labels_of(window).copy())


def test_a_tiff_whose_pages_differ_in_size_is_shown_with_the_readers_notice(window, tmp_path):
    path = tmp_path / "mixed.tif"
    with tifffile.TiffWriter(path) as tif:
        tif.write(_image(tmp_path / "a.tif") and tifffile.imread(tmp_path / "a.tif"), metadata=None)
        tif.write(np.zeros((16, 4), np.uint16), metadata=None)
    window.last_error = None
    window.open_image(path)
    _message(window, "Check this image", "mixed.tif", "holds 2 images", "only the first")
    assert window.canvas.raw_item.image.shape == (SIZE, SIZE)


# ----------------------------------------------------------------------------------------------- models


def _save_model(window, in_channels=1, n_classes=2):
    import torch

    from unet_studio.core.model.checkpoint import ModelInfo, save_model
    from unet_studio.core.config import ModelConfig
    from unet_studio.core.model.unet import UNet

    torch.manual_seed(0)
    config = ModelConfig(in_channels=in_channels, n_classes=n_classes, base_channels=4, depth=2)
    folder = window.session.project.model_dir
    save_model(folder, UNet.from_config(config), ModelInfo(config, list(range(1, n_classes + 1)),
                                                           [f"class {k}" for k in range(1, n_classes + 1)]))
    window.session.notify_model_changed()
    return folder


def _edit_json(folder, **changes):
    meta = json.loads((folder / "model.json").read_text())
    meta.update(changes)
    (folder / "model.json").write_text(json.dumps(meta))


def _predict(window, qtbot):
    window.last_error = None
    with qtbot.waitSignal(window.prediction.finished, timeout=60000):
        window.prediction.predict("slice")


def test_broken_or_unfitting_model_is_reported_and_nothing_lost(window, painted, qtbot, tmp_path):
    session = window.session
    cases = {
        "newer version": (lambda: _edit_json(_save_model(window), format_version=5),
                          r"written by a newer UNet Studio", r"upgrade UNet Studio"),
        "weights missing": (lambda: [p.unlink() for p in _save_model(window).glob("weights-*")],
                            r"weights file .* is missing", r"copy the whole model folder again"),
        "3 classes for a 2-class project": (lambda: _save_model(window, n_classes=3),
                                            r"predicts 3 classes but the project has 2", r"train again"),
    }
    for case, (make, problem, advice) in cases.items():
        make()
        _predict(window, qtbot)
        _message(window, "Prediction failed", problem, advice)
        assert session.slices.probabilities() is None, case
    # Continuing training from a model of a newer version: the training says why.
    _edit_json(_save_model(window), format_version=5)
    session.set_active_class(0)
    _paint(window, 100)
    window.last_error = None
    with qtbot.waitSignal(window.training.finished, timeout=60000):
        window.training.start(TrainingRequest(continue_training=True))
    _message(window, "Training failed", r"written by a newer UNet Studio", r"upgrade UNet Studio")
    # A 1-channel model and an RGB image.
    _save_model(window)
    window.open_image(_image(tmp_path / "colour.tif", shape=(SIZE, SIZE, 3), dtype=np.uint8, photometric="rgb"))
    _predict(window, qtbot)
    _message(window, "Prediction failed", r"the model expects 1 input channel but the image has 3",
             r"use a model trained on images like this one")
    session.set_current(0)
    painted = painted.copy()
    painted[labels_of(window) == 1] = 1  # the background stroke of the training attempt
    _still_usable_and_saved(window, painted)


# --------------------------------------------------------------------------------------- writing files


def test_export_to_a_read_only_or_full_disk_says_why(window, painted, qtbot, tmp_path, monkeypatch):
    read_only = tmp_path / "read-only export"
    with monkeypatch.context() as patch:
        _refuse_writes_under(read_only, patch)
        window.last_error = None
        window.actions.export(read_only, {"annotations"})
    _message(window, "Cannot export", r"cannot write into the export folder .*read-only export: the folder is "
             r"read-only", r"choose another folder")
    assert not window.prediction.is_running()

    full = tmp_path / "full disk"

    def half_written(path, *args, **kwargs):
        Path(path).write_bytes(b"II*\x00 the start of a file")
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(tifffile, "imwrite", half_written)
        window.last_error = None
        with qtbot.waitSignal(window.prediction.finished, timeout=30000):
            window.actions.export(full, {"annotations"})
    _message(window, "Export failed", r"cannot write .*cells_annotations\.tif: the disk is full",
             r"free some space and try again")
    assert list(full.iterdir()) == []  # no half-written file, no temporary file
    _still_usable_and_saved(window, painted)


def test_save_as_into_a_read_only_folder_keeps_everything(window, qtbot, tmp_path, monkeypatch):
    window.open_image(_image(tmp_path / "cells.tif"))  # an untitled project
    _paint(window, 30)
    assert window.session.save_now()  # autosaved into the untitled scratch folder
    scratch = window.session.folder
    painted = labels_of(window).copy()
    target = tmp_path / "read-only place"
    window.choose_folder = lambda title: target
    window.last_error = None
    with monkeypatch.context() as patch:
        _refuse_writes_under(target, patch)
        window.actions.save_as_dialog()
    _message(window, "Labels not saved", r"read-only or not writable; choose another folder",
             r"your labels are still in memory")
    assert window.session.folder == scratch and scratch.is_dir()  # the autosaved copy is not deleted
    assert tifffile.imread(scratch / "labels" / "cells_labels.tif")[30, 60] == 2
    good = tmp_path / "good place"
    window.choose_folder = lambda title: good
    window.actions.save_as_dialog()
    assert window.session.folder == good.resolve() and not scratch.exists()
    _still_usable_and_saved(window, painted)


def test_paths_with_spaces_and_non_ascii_characters(window, qtbot, tmp_path):
    folder = tmp_path / "Projekt für Zellen é"
    images = tmp_path / "Bilder mit Leerzeichen ü 細胞"
    images.mkdir()
    path = _image(images / "Zelle α 1.tif")
    window.open_project(folder)
    window.open_image(path)
    assert window.last_error is None
    _paint(window, 30)
    painted = labels_of(window).copy()
    assert window.session.save_now()
    assert (folder / "labels" / "Zelle_α_1_labels.tif").is_file()
    window.open_project(tmp_path / "andere Stelle ñ")
    assert window.open_project(folder) and window.last_error is None
    np.testing.assert_array_equal(labels_of(window), painted)
    imported = tmp_path / "Beschriftung ö.tif"
    tifffile.imwrite(imported, (painted > 0).astype(np.uint8))
    window.actions.import_labels(imported)
    assert window.last_error is None and labels_of(window).max() == 1
    window.session.editing.undo()
    out = tmp_path / "Export à l'été"
    with qtbot.waitSignal(window.prediction.finished, timeout=30000):
        window.actions.export(out, {"annotations"})
    assert window.last_error is None
    np.testing.assert_array_equal(tifffile.imread(out / "Zelle_α_1_annotations.tif"), painted)
    _still_usable_and_saved(window, painted)
