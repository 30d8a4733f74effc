"""``unet-studio train --init nuclei|MODEL_DIR``: fine-tuning starts from a starting model's weights only (fresh
history, step 0, no optimizer moments, the labels' classes, the model's network and normalisation); a model
that does not fit, or a name that is not a starting model, gets a one-line message. ``predict --model nuclei``
uses the bundled model. The bundled model is a stand-in here (``UNET_STUDIO_MODELS``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
from fs_helpers import training_folders
from model_helpers import STAND_IN_NORMALIZATION

from unet_studio import cli, resources
from unet_studio.core import presets
from unet_studio.core.config import ModelConfig, TrainConfig
from unet_studio.core.model import load_model

pytestmark = pytest.mark.usefixtures("restore_torch_threads")

STEPS, LR = 8, 1e-3


@pytest.fixture
def tiny_preset(monkeypatch):
    """A preset of another width than the starting model: the saved network shows where the run started."""

    def tiny(name, in_channels=1, n_classes=2):
        return (ModelConfig(in_channels=in_channels, n_classes=n_classes, base_channels=8, depth=2, norm="batch"),
                TrainConfig(patch_size=32, batch_size=2, epochs=1, steps_per_epoch=STEPS, eval_every=4,
                            learning_rate=LR, warmup_steps=1))

    monkeypatch.setattr(presets, "preset_configs", tiny)



def _cli(capsys, *args):
    code = cli.main([*map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _train(capsys, *args):
    return _cli(capsys, "train", "--threads", "1", *args)


def test_init_nuclei_fine_tunes_the_starting_weights(tmp_path, tiny_preset, starting_models, capsys, caplog):
    images, labels = training_folders(tmp_path, n=3, size=48)
    caplog.set_level("INFO")
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m", "--init", "nuclei")
    assert code == 0, err
    start, start_info = load_model(starting_models / "nuclei")
    tuned, info = load_model(tmp_path / "m")
    assert tuned.config == start.config  # the starting model's network, not the preset's (base 8, depth 2)
    assert info.normalization == start_info.normalization == STAND_IN_NORMALIZATION
    before, after = start.state_dict(), tuned.state_dict()
    moved = max(float((after[k] - before[k]).abs().max()) for k in before if before[k].is_floating_point())
    # Started from these weights: AdamW moves a weight about one learning rate per step (a fresh network, or
    # the starting model's moments restored, would be far away); and the weights did change.
    assert 0 < moved < 4 * STEPS * LR
    assert info.class_values == [0, 255] and info.class_names != start_info.class_names  # the labels' classes
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["extra"]["steps"] == STEPS  # step offset 0, not the starting model's 5000
    assert meta["history"] and all(entry["step"] <= STEPS for entry in meta["history"])  # a fresh history
    assert meta["extra"]["starting_model"]
    assert "resuming with the optimizer state" not in caplog.text


def test_init_from_a_model_folder(tmp_path, tiny_preset, starting_models, capsys):
    images, labels = training_folders(tmp_path, n=2, size=40)
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m",
                          "--init", starting_models / "nuclei")
    assert code == 0, err
    assert load_model(tmp_path / "m")[0].config == load_model(starting_models / "nuclei")[0].config


def test_class_mismatch_says_to_train_from_scratch(tmp_path, tiny_preset, starting_models, capsys):
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20], mask[25:35] = 128, 255
    images, labels = training_folders(tmp_path, n=2, size=40, labels=mask)
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m", "--init", "nuclei")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "the nuclei model takes 1 channel(s) and predicts background and one class (nucleus)" in err
    assert "3 classes" in err and "train from scratch" in err
    assert not (tmp_path / "m" / "model.json").exists()


def test_unknown_name_lists_the_starting_models(tmp_path, tiny_preset, starting_models, capsys):
    images, labels = training_folders(tmp_path, n=2, size=40)
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m", "--init", "nucleii")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "'nucleii'" in err and "starting models are nuclei" in err


def test_missing_bundled_model_is_one_line(tmp_path, tiny_preset, monkeypatch, capsys):
    monkeypatch.setenv(resources.MODELS_ENV, str(tmp_path / "nowhere"))
    images, labels = training_folders(tmp_path, n=2, size=40)
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m", "--init", "nuclei")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "nuclei model (bundled) is missing" in err and "reinstall" in err


def test_init_and_resume_cannot_be_combined(tmp_path, tiny_preset, starting_models, capsys):
    images, labels = training_folders(tmp_path, n=2, size=40)
    code, _, err = _train(capsys, "--images", images, "--labels", labels, "--out", tmp_path / "m",
                          "--init", "nuclei", "--resume", starting_models / "nuclei")
    assert code == 2 and "--init and --resume cannot be combined" in err


def test_predict_with_the_bundled_model_by_name(tmp_path, starting_models, capsys):
    image = np.zeros((48, 48), np.uint8)
    image[10:25, 10:25] = 220
    tifffile.imwrite(tmp_path / "a.tif", image)
    code, _, err = _cli(capsys, "predict", "--model", "nuclei", "--images", tmp_path / "a.tif",
                        "--out", tmp_path / "out", "--device", "cpu")
    assert code == 0, err
    labels = tifffile.imread(tmp_path / "out" / "a_labels.tif")
    assert (labels[12:23, 12:23] == 1).all() and labels[40:, 40:].max() == 0  # nucleus value 1, background 0


def test_starting_models_are_described():
    assert resources.STARTING_MODELS["nuclei"].licence
    lines = resources.describe_starting_models()
    assert any(line.startswith("nuclei: ") and "CC0" in line for line in lines)


def test_the_bundled_model_folder_installs_with_the_package():
    """pyproject's data-files carry resources/models/nuclei to share/unet-studio/models/nuclei."""
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    data_files = pyproject["tool"]["setuptools"]["data-files"]
    assert "resources/models/nuclei/*" in data_files["share/unet-studio/models/nuclei"]
