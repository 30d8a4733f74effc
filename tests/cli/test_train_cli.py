"""``unet-studio train``: bad input gives a one-line message and a non-zero exit; runs, Ctrl-C, resume."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tifffile
from fs_helpers import training_folders as _folders

from unet_studio import cli
from unet_studio.core import presets
from unet_studio.core.model.checkpoint import load_model
from unet_studio.core.config import ModelConfig, TrainConfig


@pytest.fixture
def tiny_preset(monkeypatch):
    """Make the presets tiny so that CLI runs take a second."""

    def tiny(name, in_channels=1, n_classes=2):
        return (ModelConfig(in_channels=in_channels, n_classes=n_classes, base_channels=4, depth=3, norm="batch"),
                TrainConfig(patch_size=32, batch_size=2, epochs=2, steps_per_epoch=4, eval_every=4))

    monkeypatch.setattr(presets, "preset_configs", tiny)


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def _train(capsys, *args):
    # One thread: the tiny models gain nothing from more, and stay fast on a busy shared machine.
    code = cli.main(["train", "--threads", "1", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_unpaired_files(tmp_path, capsys):
    images, labels = _folders(tmp_path)
    (labels / "im1.tif").unlink()
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m")
    assert code != 0
    assert "im1.tif" in _one_line_error(err)


def test_shapes_that_differ(tmp_path, capsys):
    images, labels = _folders(tmp_path)
    tifffile.imwrite(labels / "im2.tif", np.zeros((40, 41), np.uint8))
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m")
    assert code != 0
    line = _one_line_error(err)
    assert "im2.tif" in line and "same size" in line


def test_no_labelled_pixel(tmp_path, capsys):
    images, labels = _folders(tmp_path, labels=np.zeros((40, 40), np.uint8))
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m",
                          "--unlabelled", 0)
    assert code != 0
    assert "no labelled pixel" in _one_line_error(err)


def test_unreadable_file(tmp_path, capsys):
    images, labels = _folders(tmp_path)
    (images / "im0.tif").write_bytes(b"this is not a TIFF file")
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m")
    assert code != 0
    assert "im0.tif" in _one_line_error(err)


def test_missing_folder_and_bad_values(tmp_path, capsys):
    images, labels = _folders(tmp_path)
    code, _, err = _train(capsys, "--images", tmp_path / "nope", "--labels", labels, "--out", tmp_path / "m")
    assert code != 0 and "nope" in _one_line_error(err)
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m",
                          "--val-fraction", 1.5)
    assert code != 0 and "--val-fraction" in _one_line_error(err)


def test_bad_input_in_a_fresh_process_prints_no_traceback(tmp_path):
    images, labels = _folders(tmp_path)
    (labels / "im0.tif").unlink()
    result = subprocess.run([sys.executable, "-m", "unet_studio", "train", "--images", str(images),
                             "--labels", str(labels), "--out", str(tmp_path / "m")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_training_run_writes_a_model_and_resume_continues(tmp_path, capsys, tiny_preset):
    images, labels = _folders(tmp_path)
    code, out, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m",
                            "--val-fraction", 0.34, "--seed", 3)
    assert code == 0, err
    assert "model saved to" in out and "train [" in err
    model, info = load_model(tmp_path / "m")
    assert info.class_values == [0, 255] and info.train_config["seed"] == 3
    assert [h["step"] for h in info.history] == [4, 8]
    code, out, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m2",
                            "--resume", tmp_path / "m", "--epochs", 1)
    assert code == 0, err
    history = json.loads((tmp_path / "m2" / "model.json").read_text())["history"]
    assert [h["step"] for h in history] == [4, 8, 12]


def test_resume_with_other_class_values_is_refused(tmp_path, capsys, tiny_preset):
    images, labels = _folders(tmp_path)
    assert _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m")[0] == 0
    for path in labels.iterdir():
        tifffile.imwrite(path, (tifffile.imread(path) > 0).astype(np.uint8) * 7)
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m2",
                          "--resume", tmp_path / "m")
    assert code != 0 and "--resume" in _one_line_error(err)


def test_ctrl_c_saves_the_best_model_and_exits_130(tmp_path, capsys, monkeypatch, tiny_preset):
    from unet_studio.cli import progress

    images, labels = _folders(tmp_path)
    calls = {"n": 0}
    real_update = progress.ProgressBar.update

    def interrupt(self, done, total, text="", force=False):
        calls["n"] += 1
        if calls["n"] == 6:  # after the first evaluation
            raise KeyboardInterrupt
        return real_update(self, done, total, text, force)

    monkeypatch.setattr(progress.ProgressBar, "update", interrupt)
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m")
    assert code == 130
    assert "interrupted" in err and "Traceback" not in err
    model, info = load_model(tmp_path / "m")
    assert info.extra["stop_reason"] == "stopped" and info.history[0]["step"] == 4


def test_unlabelled_loss_and_other_settings_reach_the_run(tmp_path, capsys, tiny_preset):
    images, labels = _folders(tmp_path)
    code, out, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m",
                            "--unlabelled-loss", "consistency", "--unlabelled-weight", 0.25,
                            "--set", "scale_range=[0.6, 1.6]", "--set", "learning-rate=0.002")
    assert code == 0, err
    config = load_model(tmp_path / "m")[1].train_config
    assert config["unlabelled_loss"] == "consistency" and config["unlabelled_weight"] == 0.25
    assert config["scale_range"] == [0.6, 1.6] and config["learning_rate"] == 0.002
    assert config["edge_smoothness"] == 0.0  # the (tiny) preset's


def test_snap_to_edges_reaches_the_run_and_set_still_has_the_last_word(tmp_path, capsys, tiny_preset):
    images, labels = _folders(tmp_path)
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m", "--snap-to-edges")
    assert code == 0, err
    assert load_model(tmp_path / "m")[1].train_config["edge_smoothness"] == 3.0
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "o",
                          "--set", "edge_smoothness=2", "--no-snap-to-edges")
    assert code == 0, err
    assert load_model(tmp_path / "o")[1].train_config["edge_smoothness"] == 2.0  # --set is applied last
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "n", "--snap-to-edges",
                          "--set", "edge_smoothness=1.5")
    assert code == 0, err
    assert load_model(tmp_path / "n")[1].train_config["edge_smoothness"] == 1.5


@pytest.mark.parametrize("setting, words", [("bogus=1", "training settings"), ("scale_range=[2, 1]", "scale_range"),
                                            ("unlabelled_loss=teacher", "unlabelled_loss"), ("seed", "NAME=VALUE")])
def test_a_bad_setting_is_one_line(tmp_path, capsys, tiny_preset, setting, words):
    images, labels = _folders(tmp_path)
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m", "--set", setting)
    assert code != 0
    assert words in _one_line_error(err)
    assert not (tmp_path / "m").exists()
