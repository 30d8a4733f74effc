"""Hostile input to the real ``unet-studio`` command, in a fresh process (issue 13).

Case 1: ``--out`` equal to ``--images`` never replaces someone's file and never predicts on outputs.
Case 2: inputs differing only in their extension get distinct outputs, or a refusal naming the clash.
Case 8: SIGTERM and SIGHUP stop ``train`` as Ctrl-C does (the model is saved) and ``predict`` without leaving
its temporary files.
Cases 13, 16: every numeric option is checked (finite, in range) before any work; a time limit so short that
no step runs still saves a model.
Case 20: float images near float32's limits and float64 +-1e308 normalise to finite values: no NaN written.
Smaller ones: file names with line breaks are quoted in the one-line failure format; tifffile's own ERROR
log lines about a file that is read well do not show as errors.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from fs_helpers import training_folders
from model_helpers import threshold_net

from unet_studio.core.io import write_image
from unet_studio.core.model import ModelInfo, save_model

ROOT = Path(__file__).resolve().parents[2]


def command(*args) -> list[str]:
    return [sys.executable, "-m", "unet_studio", *map(str, args)]


def unet_studio(*args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def one_error_line(result: subprocess.CompletedProcess, *phrases: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1, result.stderr
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    return lines[0]


def threshold_model(folder: Path) -> Path:
    """A same-mode U-Net (base 4, depth 3) whose foreground logit is 20 * (x - 0.5) of its normalised input."""
    net = threshold_net()
    info = ModelInfo(net.config, class_values=[0, 255], class_names=["background", "nucleus"],
                     normalization={"method": "percentile", "low": 0.0, "high": 100.0})
    return save_model(folder, net, info)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return threshold_model(tmp_path_factory.mktemp("model") / "model")


def ramp(shape=(40, 48), dtype=np.uint16, scale=1000.0) -> np.ndarray:
    return (np.linspace(0, 1, shape[0] * shape[1]).reshape(shape) * scale).astype(dtype)


def files(folder: Path) -> list[str]:
    """Every entry of ``folder``, hidden temporary files included."""
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------ case 1: --out equal to --images


def test_out_equal_to_images_replaces_nothing_and_predicts_no_output(tmp_path, model_dir):
    folder = tmp_path / "data"
    folder.mkdir()
    write_image(folder / "a.tif", ramp(), "YX")
    truth = np.full((40, 48), 7, np.uint8)
    write_image(folder / "a_labels.tif", truth, "YX")  # someone's ground truth
    before = (folder / "a_labels.tif").read_bytes()
    result = unet_studio("predict", "--model", model_dir, "--images", folder, "--out", folder)
    one_error_line(result, "a_labels.tif", "--overwrite", "another --out")
    assert (folder / "a_labels.tif").read_bytes() == before and files(folder) == ["a.tif", "a_labels.tif"]

    result = unet_studio("predict", "--model", model_dir, "--images", folder, "--out", folder, "--overwrite")
    assert result.returncode == 0, result.stderr
    assert "skipped 1 file(s) that are outputs of a prediction: a_labels.tif" in result.stderr
    assert "a.tif: a_labels.tif" in result.stdout and "a_labels_labels" not in result.stdout
    assert files(folder) == ["a.tif", "a_labels.tif"]  # the output was not predicted on in turn

    result = unet_studio("predict", "--model", model_dir, "--images", folder, "--out", folder, "--overwrite")
    assert result.returncode == 0 and files(folder) == ["a.tif", "a_labels.tif"]  # a second run: the same


# ---------------------------------------------------------------- case 2: names differing in the extension


def test_names_differing_in_the_extension_get_distinct_outputs(tmp_path, model_dir):
    folder = tmp_path / "images"
    folder.mkdir()
    write_image(folder / "a.tif", ramp(dtype=np.uint8, scale=200), "YX")
    write_image(folder / "a.png", ramp(dtype=np.uint8, scale=200)[::-1], "YX")
    out = tmp_path / "out"
    result = unet_studio("predict", "--model", model_dir, "--images", folder, "--out", out)
    assert result.returncode == 0, result.stderr
    assert files(out) == ["a_png_labels.tif", "a_tif_labels.tif"]
    assert "2 of 2 images predicted" in result.stderr
    np.testing.assert_array_equal(tifffile.imread(out / "a_png_labels.tif"),
                                  tifffile.imread(out / "a_tif_labels.tif")[::-1])


def test_names_differing_only_in_case_are_refused(tmp_path, model_dir):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.tif", "a.png", "a.TIF"):
        write_image(folder / name, ramp(dtype=np.uint8, scale=200), "YX")
    if len(list(folder.iterdir())) < 3:
        pytest.skip("this file system does not tell a.tif from a.TIF")
    out = tmp_path / "out"
    line = one_error_line(unet_studio("predict", "--model", model_dir, "--images", folder, "--out", out))
    assert "a.TIF" in line and "a.tif" in line and "rename one of them" in line
    assert not out.exists() or files(out) == []


# ----------------------------------------------------------------------------------- case 8: signals


def wait_for(process: subprocess.Popen, text: str) -> str:
    """Read the process's stderr until ``text`` appears (the progress bar prints its first line at once);
    fail when the process ends without printing it."""
    seen = ""
    while text not in seen:
        line = process.stderr.readline()
        assert line or process.poll() is None, seen
        seen += line
    return seen


@pytest.mark.parametrize("signum", [signal.SIGTERM, getattr(signal, "SIGHUP", signal.SIGTERM)],
                         ids=["SIGTERM", "SIGHUP"])
def test_a_signal_during_train_saves_the_model(tmp_path, signum):
    images, labels = training_folders(tmp_path, n=3, size=64)
    out = tmp_path / "model"
    process = subprocess.Popen(command("train", "--images", images, "--labels", labels, "--out", out,
                                       "--threads", 1, "--epochs", 1000), cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(process, "train [")
        process.send_signal(signum)
        _, err = process.communicate(timeout=240)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, err
    assert "interrupted" in err and "the best model so far is in" in err and "Traceback" not in err
    assert (out / "model.json").is_file()
    assert not [name for name in files(out) if name.startswith(".")]


def test_a_signal_during_predict_leaves_no_temporary_file(tmp_path, model_dir):
    image = tmp_path / "stack.tif"
    write_image(image, np.stack([ramp((512, 512))] * 200), "ZYX")
    out = tmp_path / "out"
    process = subprocess.Popen(command("predict", "--model", model_dir, "--images", image, "--out", out,
                                       "--probabilities", "--tile-size", 64, "--batch-size", 1),
                               cwd=ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(process, "stack.tif [")
        assert any(name.startswith(".") for name in files(out))  # the memory-mapped outputs being written
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM and "interrupted (SIGTERM)" in err, err
    assert files(out) == []


# ------------------------------------------------------------------------- cases 13, 16: numeric options


BAD_OPTIONS = {
    "train --time-limit nan": ("train", "--time-limit", "nan"),
    "train --time-limit inf": ("train", "--time-limit", "inf"),
    "train --time-limit -1": ("train", "--time-limit", "-1"),
    "train --val-fraction nan": ("train", "--val-fraction", "nan"),
    "train --seed -1": ("train", "--seed", "-1"),
    "train --seed 2**70": ("train", "--seed", str(2**70)),
    "train --epochs 0": ("train", "--epochs", "0"),
    "train --threads 0": ("train", "--threads", "0"),
    "train --unlabelled -3": ("train", "--unlabelled", "-3"),
    "predict --foreground 1e999": ("predict", "--foreground", "1e999"),
    "predict --foreground nan": ("predict", "--foreground", "nan"),
    "predict --foreground 0.5": ("predict", "--foreground", "0.5"),
    "predict --thresholds nan,0.5": ("predict", "--thresholds", "nan,0.5"),
    "predict --overlap nan": ("predict", "--overlap", "nan"),
    "predict --overlap 1": ("predict", "--overlap", "1"),
    "predict --batch-size 0": ("predict", "--batch-size", "0"),
    "predict --tile-size -5": ("predict", "--tile-size", "-5"),
    "predict --min-size -1": ("predict", "--min-size", "-1"),
}


def test_numeric_options_are_checked_before_any_work(tmp_path, model_dir):
    images, labels = training_folders(tmp_path)
    out = tmp_path / "out"
    base = {"train": ("--images", images, "--labels", labels, "--out", out),
            "predict": ("--model", model_dir, "--images", images, "--out", out)}
    # All at once: each is a fresh interpreter that mostly waits for its imports.
    running = {case: subprocess.Popen(command(cmd, *base[cmd], option, value), cwd=ROOT, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
               for case, (cmd, option, value) in BAD_OPTIONS.items()}
    for case, process in running.items():
        stdout, stderr = process.communicate(timeout=300)
        result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        option = BAD_OPTIONS[case][1]
        line = one_error_line(result, option)
        assert f"unet-studio {BAD_OPTIONS[case][0]}: error: {option}" in line, (case, line)
    assert not out.exists()


def test_a_time_limit_shorter_than_one_step_still_saves_a_model(tmp_path):
    images, labels = training_folders(tmp_path)
    out = tmp_path / "model"
    result = unet_studio("train", "--images", images, "--labels", labels, "--out", out, "--threads", 1,
                         "--time-limit", "1e-300")
    assert result.returncode == 0, result.stderr
    assert "time limit reached after 0 steps" in result.stdout and (out / "model.json").is_file()


# -------------------------------------------------------------------------- case 20: extreme float values


@pytest.mark.parametrize("values", [
    np.float32(2.5e-42) * ramp(dtype=np.float32, scale=1.0),
    np.float32(3e38) * (ramp(dtype=np.float32, scale=2.0) - np.float32(1)),
    1e308 * (ramp(dtype=np.float64, scale=2.0) - 1),
], ids=["float32 tiny", "float32 +-3e38", "float64 +-1e308"])
def test_extreme_float_images_give_finite_probabilities(tmp_path, model_dir, values):
    tifffile.imwrite(tmp_path / "extreme.tif", values)
    result = unet_studio("predict", "--model", model_dir, "--images", tmp_path / "extreme.tif",
                         "--out", tmp_path / "out", "--probabilities")
    assert result.returncode == 0, result.stderr
    probs = tifffile.imread(tmp_path / "out" / "extreme_probabilities.tif")
    assert np.isfinite(probs).all()
    labels = tifffile.imread(tmp_path / "out" / "extreme_labels.tif")
    assert 0.4 < (labels == 255).mean() < 0.6  # the bright half of the ramp, as for any other scale


# --------------------------------------------------------------------------------------- smaller ones


def test_a_file_name_with_a_line_break_stays_on_its_line(tmp_path, model_dir):
    folder = tmp_path / "images"
    folder.mkdir()
    write_image(folder / "good.tif", ramp(), "YX")
    (folder / "bad\nname.tif").write_bytes(b"II*\x00" + b"\x00" * 10)
    result = unet_studio("predict", "--model", model_dir, "--images", folder, "--out", tmp_path / "out")
    assert result.returncode == 1
    failed = [line for line in result.stderr.splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "'bad\\nname.tif'" in failed[0], result.stderr
    assert not any(line.startswith("name.tif") for line in result.stderr.splitlines())


def test_tifffile_errors_about_a_file_that_reads_well_are_not_shown_as_errors(tmp_path, model_dir):
    """tifffile logs some oddities at ERROR level (blocked OME XML) and reads the file anyway."""
    image = tmp_path / "odd.tif"
    write_image(image, ramp(), "YX")
    script = (
        "import logging, sys\n"
        "from unet_studio.cli import main, predict\n"
        "real = predict.read_image\n"
        "def read_image(path, **options):\n"
        "    logging.getLogger('tifffile').error('<tifffile.TiffFile> OME series raised ParseError (blocked)')\n"
        "    return real(path, **options)\n"
        "predict.read_image = read_image\n"
        f"sys.exit(main(['predict', '--model', {str(model_dir)!r}, '--images', {str(image)!r}, "
        f"'--out', {str(tmp_path / 'out')!r}]))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert ": error:" not in result.stderr and "blocked" not in result.stderr, result.stderr
    assert (tmp_path / "out" / "odd_labels.tif").is_file()
