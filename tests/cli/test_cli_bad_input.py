"""Bad input on the command line (issue #7): one line on stderr, a non-zero exit, no traceback unless --debug.

Each case runs the real ``unet-studio train`` or ``unet-studio predict`` (in-process through
``unet_studio.cli.main``; two tests in a fresh interpreter) and checks that the one line names the
thing (the file or folder), what is wrong with it and what to do, and that no output is left half-written.

Where each item of the issue is covered:

======================================================  ==============================================
unreadable, corrupt or truncated TIFF                   PREDICT_IMAGES / TRAIN_IMAGES: "unreadable",
                                                        "corrupt", "truncated"
wrong extension                                         PREDICT_IMAGES: "wrong extension", "text .tif"
                                                        (a folder of images skips unknown extensions)
empty file; zero-size dimension; 5-D, 6-D data          PREDICT_IMAGES / TRAIN_IMAGES
image and labels of different shapes                    TRAIN_DATA: "labels of another size"
label values that are not classes                       TRAIN_DATA: "labels of another model",
                                                        "instance image as classes"
NaN or Inf in a float image; a constant image           test_predict_warns_about_nan_and_constant_images,
                                                        test_train_warns_about_nan_and_constant_images_...
                                                        (a warning line and the results: not an error)
image larger than RAM                                   PREDICT_IMAGES / TRAIN_IMAGES: "larger than RAM"
                                                        (a sparse TIFF declaring 4x the free memory);
                                                        test_predict_refuses_a_slice_that_does_not_fit_...
labels folder with no match for an image                TRAIN_DATA: "no label image"
model folder from another version or with files missing PREDICT_MODELS, TRAIN_DATA: "--resume ..."
model whose channels or classes do not fit              PREDICT_IMAGES: "3 channels, 1-channel model";
                                                        TRAIN_DATA: "--resume 1-channel model", "--resume
                                                        2-class model"
full disk; read-only output folder                      PREDICT_OUTPUTS, TRAIN_DATA: "read-only --out",
                                                        test_train_full_disk_..., test_predict_on_a_real_full_disk_...
paths with spaces and non-ASCII characters              test_predict_paths_with_spaces_and_non_ascii,
                                                        test_train_warns_about_..._with_non_ascii_paths
======================================================  ==============================================
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from fs_helpers import refuse_writes_under as _refuse_writes_under
from fs_helpers import training_folders as _folders

from unet_studio import cli
from unet_studio.core.io import stack as core_io
from unet_studio.core.io import memory as core_memory
from unet_studio.core import presets
from unet_studio.core.model.checkpoint import ModelInfo, save_model
from unet_studio.core.config import ModelConfig, TrainConfig
from unet_studio.core.model.unet import UNet


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def _save_tiny_model(folder: Path, in_channels: int = 1, class_values=(0, 255)) -> Path:
    import torch

    torch.manual_seed(0)
    config = ModelConfig(in_channels=in_channels, n_classes=len(class_values), base_channels=4, depth=2)
    info = ModelInfo(config, list(class_values), [f"value {v}" for v in class_values])
    return save_model(folder, UNet.from_config(config), info)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return _save_tiny_model(tmp_path_factory.mktemp("model") / "model")


@pytest.fixture
def tiny_preset(monkeypatch):
    def tiny(name, in_channels=1, n_classes=2):
        return (ModelConfig(in_channels=in_channels, n_classes=n_classes, base_channels=4, depth=2, norm="batch"),
                TrainConfig(patch_size=32, batch_size=2, epochs=1, steps_per_epoch=4, eval_every=2))

    monkeypatch.setattr(presets, "preset_configs", tiny)


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error_line(err: str, command: str, *patterns: str) -> str:
    """The whole of stderr is one line "unet-studio COMMAND: error: ..." matching every pattern."""
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith(f"unet-studio {command}: error: "), line
    for pattern in patterns:
        assert re.search(pattern, line, re.IGNORECASE), f"{pattern!r} not in {line!r}"
    return line


def _tiff(path: Path, shape=(40, 40), dtype=np.uint8, **kwargs) -> Path:
    rng = np.random.default_rng(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile warns about zero-size arrays
        tifffile.imwrite(path, (rng.random(shape) * 200).astype(dtype), **kwargs)
    return path


# ------------------------------------------------------------------------------------------- bad images
# Each maker writes a bad image file at the path it is given (or makes reading it fail) and returns the
# path; then (problem, what to do) that the message must say.


def _unreadable(path, monkeypatch):
    _tiff(path)
    real_open = open

    def refuse(file, *args, **kwargs):  # root ignores file permissions: refuse as a chmod 000 would
        if Path(file) == path:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(core_io, "open", refuse, raising=False)
    return path


def _corrupt(path, monkeypatch):
    path.write_bytes(b"II*\x00" + bytes(range(250)) * 3)  # a TIFF signature, then garbage
    return path


def _truncated(path, monkeypatch):
    whole = _tiff(path.with_name("whole.tmp"), shape=(4, 64, 64), dtype=np.uint16).read_bytes()
    path.with_name("whole.tmp").unlink()
    path.write_bytes(whole[: len(whole) // 2])
    return path


def _text(path, monkeypatch):
    path.write_text("sample 3, DAPI, exposure 200 ms\n")
    return path


def _wrong_extension(path, monkeypatch):
    target = path.with_suffix(".czi")
    target.write_bytes(b"ZISRAWFILE" + bytes(200))
    return target


def _empty(path, monkeypatch):
    path.write_bytes(b"")
    return path


def _zero_size(path, monkeypatch):
    return _tiff(path, shape=(0, 40))


def _five_d(path, monkeypatch):
    return _tiff(path, shape=(2, 3, 2, 40, 40), photometric="minisblack")


def _six_d(path, monkeypatch):
    return _tiff(path, shape=(2, 2, 2, 2, 40, 40), photometric="minisblack")


def _rgb(path, monkeypatch):
    return _tiff(path, shape=(40, 40, 3), photometric="rgb")


def _larger_than_ram(request):
    def make(path, monkeypatch):
        huge = request.getfixturevalue("larger_than_memory_tiff")
        huge.rename(path)
        request.addfinalizer(lambda: path.unlink(missing_ok=True))
        return path
    return make


BAD_IMAGES = {
    "unreadable": (_unreadable, r"cannot be opened \(Permission denied\)", r"check that it is readable"),
    "corrupt": (_corrupt, r"damaged", r"copy or export the file again"),
    "truncated": (_truncated, r"truncated", r"copy or export the file again"),
    "text .tif": (_text, r"contains text, not a TIFF", r"check that the right file was chosen"),
    "empty": (_empty, r"empty \(0 bytes\)", r"copy or export it again"),
    "zero-size dimension": (_zero_size, r"dimension of size zero", r"export the image again"),
    "5-D unknown axes": (_five_d, r"5 dimensions .* unknown", r"ImageJ hyperstack or as OME-TIFF"),
    "6-D unknown axes": (_six_d, r"6 dimensions .* unknown", r"ImageJ hyperstack or as OME-TIFF"),
    "larger than RAM": (None, r"needs about [\d.]+ GiB of memory, but only [\d.]+ [GM]iB is available",
                        r"crop or downsample"),
}
PREDICT_IMAGES = {
    **BAD_IMAGES,
    "wrong extension": (_wrong_extension, r"extension '\.czi', which is not a supported image format",
                        r"convert the image to TIFF"),
    "3 channels, 1-channel model": (_rgb, r"3 channels but the model expects 1",
                                    r"use a model trained on images like this one"),
}


@pytest.mark.parametrize("case", list(PREDICT_IMAGES))
def test_predict_bad_image(case, tmp_path, model_dir, capsys, monkeypatch, request):
    make, problem, advice = PREDICT_IMAGES[case]
    make = make or _larger_than_ram(request)
    path = make(tmp_path / "scan 1.tif", monkeypatch)
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "predict", "--model", model_dir, "--images", path, "--out", out)
    assert code != 0 and stdout == ""
    line = _one_error_line(err, "predict", problem, advice)
    assert path.name in line
    assert list(out.iterdir()) == []  # no output, no temporary file


@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_train_bad_image(case, tmp_path, capsys, monkeypatch, request):
    make, problem, advice = BAD_IMAGES[case]
    make = make or _larger_than_ram(request)
    images, labels = _folders(tmp_path)
    path = make(images / "im0.tif", monkeypatch)
    code, _, err = _run(capsys, "train", "--images", images, "--labels", labels, "--out", tmp_path / "m")
    assert code != 0
    line = _one_error_line(err, "train", problem, advice)
    assert path.name in line
    assert not (tmp_path / "m").exists()  # nothing written before the data is known to be good


# --------------------------------------------------------------------------------------- training data


def _labels_of_another_size(tmp_path, images, labels, monkeypatch):
    tifffile.imwrite(labels / "im1.tif", np.zeros((40, 41), np.uint8))
    return [], ("im1.tif", r"is \(40, 40\) but its labels im1.tif are \(40, 41\)",
                r"check that the label image was made for this image")


def _no_label_image(tmp_path, images, labels, monkeypatch):
    (labels / "im2.tif").unlink()
    return [], ("im2.tif", r"no label image in .* for im2.tif", r"add the label image or move the image out")


def _instance_image_as_classes(tmp_path, images, labels, monkeypatch):
    for i in range(3):
        tifffile.imwrite(labels / f"im{i}.tif", np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) % 40)
    return [], ("", r"40 distinct values, too many for dense classes", r"use --instances")


def _resume(model_maker):
    def setup(tmp_path, images, labels, monkeypatch):
        folder = tmp_path / "old model"
        expect = model_maker(folder, images, labels)
        return ["--resume", folder], expect
    return setup


def _model_of_other_values(folder, images, labels):
    _save_tiny_model(folder)  # predicts 0/255
    for path in labels.iterdir():
        tifffile.imwrite(path, (tifffile.imread(path) > 0).astype(np.uint8) * 7)
    return ("old model", r"predicts the values \[0, 255\] but the labels hold \[0, 7\]",
            r"train a new model instead of --resume")


def _two_class_model_three_values(folder, images, labels):
    _save_tiny_model(folder)
    tifffile.imwrite(labels / "im0.tif", np.full((40, 40), 100, np.uint8))
    return ("old model", r"predicts the values \[0, 255\] but the labels hold \[0, 100, 255\]",
            r"train a new model instead of --resume")


def _one_channel_model_rgb_images(folder, images, labels):
    _save_tiny_model(folder)
    for path in images.iterdir():
        tifffile.imwrite(path, np.repeat(tifffile.imread(path)[..., None], 3, axis=2), photometric="rgb")
    return ("old model", r"takes images with 1 channel\(s\) but the images in .* have 3",
            r"train a new model instead of --resume")


def _newer_model(folder, images, labels):
    _save_tiny_model(folder)
    _edit_json(folder, format_version=7)
    return ("old model", r"written by a newer UNet Studio \(model format 7", r"upgrade UNet Studio")


def _model_without_weights(folder, images, labels):
    _save_tiny_model(folder)
    for path in folder.glob("weights-*"):
        path.unlink()
    return ("old model", r"the weights file weights-\w+\.safetensors is missing", r"copy the whole model folder")


def _read_only_out(tmp_path, images, labels, monkeypatch):
    _refuse_writes_under(tmp_path / "m", monkeypatch)
    return [], ("m", r"cannot write into the model folder .*: the folder is read-only", r"choose another folder")


def _edit_json(folder, **changes):
    meta = json.loads((folder / "model.json").read_text())
    meta.update(changes)
    (folder / "model.json").write_text(json.dumps(meta))


TRAIN_DATA = {
    "labels of another size": _labels_of_another_size,
    "no label image": _no_label_image,
    "instance image as classes": _instance_image_as_classes,
    "labels of another model": _resume(_model_of_other_values),
    "--resume 2-class model, 3 label values": _resume(_two_class_model_three_values),
    "--resume 1-channel model, RGB images": _resume(_one_channel_model_rgb_images),
    "--resume model of a newer version": _resume(_newer_model),
    "--resume model without weights": _resume(_model_without_weights),
    "read-only --out": _read_only_out,
}


@pytest.mark.parametrize("case", list(TRAIN_DATA))
def test_train_bad_data(case, tmp_path, capsys, monkeypatch):
    images, labels = _folders(tmp_path)
    extra, (name, problem, advice) = TRAIN_DATA[case](tmp_path, images, labels, monkeypatch)
    code, _, err = _run(capsys, "train", "--images", images, "--labels", labels, "--out", tmp_path / "m", *extra)
    assert code != 0
    line = _one_error_line(err, "train", problem, advice)
    assert name in line
    out = tmp_path / "m"
    assert not out.exists() or list(out.iterdir()) == []  # no model, no temporary file


# ------------------------------------------------------------------------------------------ bad models


def _model_case(edit, problem, advice):
    def make(model_dir: Path, tmp_path: Path) -> Path:
        folder = tmp_path / "model copy"
        shutil.copytree(model_dir, folder)
        edit(folder)
        return folder
    return make, problem, advice


def _damage_weights(folder):
    path = next(folder.glob("weights-*"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


PREDICT_MODELS = {
    "newer version": _model_case(lambda f: _edit_json(f, format_version=2), r"written by a newer UNet Studio",
                                 r"upgrade UNet Studio"),
    "unknown old version": _model_case(lambda f: _edit_json(f, format_version=0),
                                       r"unknown model format version \(0", r"train the model again"),
    "model.json missing": _model_case(lambda f: (f / "model.json").unlink(), r"model\.json is missing",
                                      r"train a model with 'unet-studio train'"),
    "model.json damaged": _model_case(lambda f: (f / "model.json").write_text('{"format": "unet-st'),
                                      r"not valid JSON", r"copy it again or train the model again"),
    "model.json incomplete": _model_case(lambda f: _edit_json(f, model_config=None),
                                         r"incomplete or inconsistent", r"copy the model folder again"),
    "weights missing": _model_case(lambda f: [p.unlink() for p in f.glob("weights-*")],
                                   r"weights file .* is missing", r"copy the whole model folder again"),
    "weights damaged": _model_case(_damage_weights, r"does not match the checksum .*damaged",
                                   r"copy the model folder again"),
    "not a folder": _model_case(lambda f: (shutil.rmtree(f), f.write_text("x")), r"is not a folder",
                                r"pass the model folder"),
}


@pytest.mark.parametrize("case", list(PREDICT_MODELS))
def test_predict_bad_model(case, tmp_path, model_dir, capsys):
    make, problem, advice = PREDICT_MODELS[case]
    folder = make(model_dir, tmp_path)
    image = _tiff(tmp_path / "a.tif")
    code, _, err = _run(capsys, "predict", "--model", folder, "--images", image, "--out", tmp_path / "out")
    assert code != 0
    line = _one_error_line(err, "predict", problem, advice)
    assert "model copy" in line
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------------------- bad outputs


def _full_disk_in_memmap(out: Path, monkeypatch) -> None:
    def half_written(path, *args, **kwargs):
        Path(path).write_bytes(b"II*\x00 a few bytes of a header")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(tifffile, "memmap", half_written)


PREDICT_OUTPUTS = {
    "read-only output folder": (lambda out, mp: _refuse_writes_under(out, mp),
                                r"cannot write into the output folder .*out folder: the folder is read-only",
                                r"choose another folder"),
    "full disk": (_full_disk_in_memmap, r"cannot write .*a_labels\.tif: the disk is full", r"free some space"),
}


@pytest.mark.parametrize("case", list(PREDICT_OUTPUTS))
def test_predict_unwritable_output(case, tmp_path, model_dir, capsys, monkeypatch):
    make, problem, advice = PREDICT_OUTPUTS[case]
    out = tmp_path / "out folder"
    make(out, monkeypatch)
    image = _tiff(tmp_path / "a.tif")
    code, _, err = _run(capsys, "predict", "--model", model_dir, "--images", image, "--out", out)
    assert code != 0
    _one_error_line(err, "predict", problem, advice)
    monkeypatch.undo()
    assert list(out.iterdir()) == []  # nothing half-written, no temporary file


def test_predict_folder_reports_each_bad_image_on_its_line_and_goes_on(tmp_path, model_dir, capsys, monkeypatch):
    folder = tmp_path / "images"
    folder.mkdir()
    _tiff(folder / "good.tif")
    _corrupt(folder / "corrupt.tif", monkeypatch)
    _empty(folder / "empty.tif", monkeypatch)
    (folder / "notes.txt").write_text("not an image: skipped")  # unknown extensions in a folder are not images
    out = tmp_path / "out"
    code, stdout, err = _run(capsys, "predict", "--model", model_dir, "--images", folder, "--out", out)
    assert code == 1 and "Traceback" not in err
    failed = [line for line in err.splitlines() if "FAILED" in line]
    assert len(failed) == 2
    assert any("corrupt.tif" in line and "damaged" in line for line in failed)
    assert any("empty.tif" in line and "empty (0 bytes)" in line for line in failed)
    assert "1 of 3 images predicted" in err and "good.tif" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["good_labels.tif"]


def test_predict_refuses_a_slice_that_does_not_fit_in_memory(tmp_path, model_dir, capsys, monkeypatch):
    """The memory probe says 1 MiB: a 256 x 256 slice needs more to predict, so it is refused up front."""
    image = _tiff(tmp_path / "wide.tif", shape=(3, 256, 256), dtype=np.uint16, photometric="minisblack")
    monkeypatch.setattr(core_memory, "available_ram", lambda: 1 << 20)
    monkeypatch.setattr("unet_studio.core.io.available_ram", lambda: 1 << 20)  # what core.predict asks
    out = tmp_path / "out"
    code, _, err = _run(capsys, "predict", "--model", model_dir, "--images", image, "--out", out)
    assert code != 0
    _one_error_line(err, "predict", r"wide.tif' is too large to predict here: one slice of 256 x 256 pixels needs "
                    r"about [\d.]+ MiB of memory, but only 1.0 MiB is available", r"crop or downsample")
    assert list(out.iterdir()) == []
    monkeypatch.undo()  # with the real memory, the same stack streams slice by slice
    code, _, err = _run(capsys, "predict", "--model", model_dir, "--images", image, "--out", out)
    assert code == 0, err
    assert tifffile.imread(out / "wide_labels.tif").shape == (3, 256, 256)


# ------------------------------------------------------------------------ unusual values: warnings


def test_predict_warns_about_nan_and_constant_images(tmp_path, model_dir, capsys):
    nan_image = np.linspace(0, 1, 40 * 40, dtype=np.float32).reshape(40, 40)
    nan_image[5:10, 5:10] = np.nan
    nan_image[20, 20] = np.inf
    cases = {"nan.tif": (nan_image, r"26 pixels are NaN or infinite .* Remove NaNs"),
             "constant.tif": (np.full((40, 40), 7, np.uint16), r"the image is constant \(every pixel is 7\)")}
    for name, (data, warning) in cases.items():
        tifffile.imwrite(tmp_path / name, data)
        out = tmp_path / f"out {name}"
        code, stdout, err = _run(capsys, "predict", "--model", model_dir, "--images", tmp_path / name, "--out", out)
        assert code == 0, err  # a result, and a word about it
        assert "Traceback" not in err
        warnings_ = [line for line in err.splitlines() if ": warning: " in line]
        assert len(warnings_) == 1 and name in warnings_[0] and re.search(warning, warnings_[0]), err
        labels = tifffile.imread(out / f"{Path(name).stem}_labels.tif")
        assert labels.shape == (40, 40) and set(np.unique(labels)) <= {0, 255}


def test_predict_paths_with_spaces_and_non_ascii(tmp_path, model_dir, capsys):
    base = tmp_path / "Données de l'été 2024 ü"
    images = base / "Bilder mit Leerzeichen"
    images.mkdir(parents=True)
    model = shutil.copytree(model_dir, base / "modèle ñ")
    _tiff(images / "Zelle α 1.tif")
    _tiff(images / "細胞 2.tif")
    out = base / "Ergebnisse ö"
    code, stdout, err = _run(capsys, "predict", "--model", model, "--images", images, "--out", out)
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["Zelle α 1_labels.tif", "細胞 2_labels.tif"]
    assert "Zelle α 1.tif: Zelle α 1_labels.tif" in stdout and str(out) in err


def test_train_warns_about_nan_and_constant_images_with_non_ascii_paths(tmp_path, capsys, caplog, tiny_preset):
    base = tmp_path / "Trainingsdaten für Zellen é"
    base.mkdir()
    images, labels = _folders(base, n=4)
    nan_image = tifffile.imread(images / "im1.tif").astype(np.float32)
    nan_image[:3, :3] = np.nan
    tifffile.imwrite(images / "im1.tif", nan_image)
    tifffile.imwrite(images / "im2.tif", np.full((40, 40), 9, np.uint8))
    out = tmp_path / "Modell ü 1"
    with caplog.at_level("WARNING"):
        code, stdout, err = _run(capsys, "train", "--threads", 1, "--images", images, "--labels", labels,
                                 "--out", out, "--val-fraction", 0.25)
    assert code == 0, err
    assert "model saved to" in stdout and (out / "model.json").is_file()
    messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("im1.tif" in m and "9 pixels are NaN or infinite" in m for m in messages), messages
    assert any("im2.tif" in m and "the image is constant (every pixel is 9)" in m for m in messages), messages


def test_warnings_are_one_line_each_on_stderr(capsys):
    """Outside pytest's log capture the CLI prints a log warning as "unet-studio train: warning: ..."."""
    import logging

    formatter = cli._OneLineFormatter("unet-studio train")
    record = logging.LogRecord("unet_studio.core.train.data", logging.WARNING, __file__, 1,
                               "'%s': two\nlines", ("a b.tif",), None)
    assert formatter.format(record) == "unet-studio train: warning: 'a b.tif': two lines"


# ------------------------------------------------------------------------------- full disk in training


def test_train_full_disk_is_one_line_and_leaves_no_half_written_model(tmp_path, capsys, monkeypatch, tiny_preset):
    images, labels = _folders(tmp_path)
    out = tmp_path / "m"
    real_fsync = os.fsync

    def full(fd):  # the first model save fails as on a full disk (fsync reports ENOSPC on NFS, say)
        if out.exists() and any(out.iterdir()):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", full)
    code, _, err = _run(capsys, "train", "--threads", 1, "--images", images, "--labels", labels, "--out", out)
    assert code != 0 and "Traceback" not in err
    errors = [line for line in err.splitlines() if "error" in line or "warning" in line]
    assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1], err
    assert re.search(r"unet-studio train: error: cannot write .*weights-\w+\.safetensors: the disk is full; "
                     "free some space and try again", errors[0])
    assert list(out.iterdir()) == []  # no weights without model.json, no temporary file


# -------------------------------------------------------------------------------- in a fresh process


def test_fresh_process_one_line_without_debug_and_traceback_with_it(tmp_path, model_dir):
    bad = _corrupt(tmp_path / "broken scan.tif", None)
    args = ["predict", "--model", str(model_dir), "--images", str(bad), "--out", str(tmp_path / "out")]
    script = ("import sys\nfrom unet_studio.cli import main\n"
              f"code = main({args!r})\nprint('exit', code, file=sys.stderr)\nprint('-8<-', file=sys.stderr)\n"
              f"main({args + ['--debug']!r})\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    plain, debug = result.stderr.split("-8<-\n")
    assert plain.splitlines()[-1] == "exit 2"
    line = _one_error_line("\n".join(plain.splitlines()[:-1]), "predict", "damaged", "copy or export")
    assert "broken scan.tif" in line  # and tifffile's own log lines about the damage stay quiet
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in debug and "ImageReadError" in debug


def _mount_small_tmpfs(folder: Path, size_kib: int) -> bool:
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    folder.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)],
                            capture_output=True, timeout=30)
    return result.returncode == 0


def test_predict_on_a_real_full_disk_fails_cleanly(tmp_path, model_dir):
    """A real full file system (a 256 KiB tmpfs; needs root): outputs are memory-mapped, and writing a map
    of a sparse file on a full disk kills the process with SIGBUS unless the file's blocks are reserved
    first. The command must say "disk is full" in one line and leave nothing behind."""
    disk = tmp_path / "small disk"
    if not _mount_small_tmpfs(disk, 256):
        pytest.skip("mounting a small tmpfs needs root on Linux")
    try:
        image = _tiff(tmp_path / "a.tif", shape=(600, 600), dtype=np.uint16)  # 360 kB of labels: too many
        result = subprocess.run([sys.executable, "-m", "unet_studio", "predict", "--model", str(model_dir),
                                 "--images", str(image), "--out", str(disk / "out"), "--probabilities"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, (result.returncode, result.stderr)  # not -7 (SIGBUS)
        _one_error_line(result.stderr, "predict", r"a_labels.tif: the disk is full", r"free some space")
        assert list((disk / "out").iterdir()) == []
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)
