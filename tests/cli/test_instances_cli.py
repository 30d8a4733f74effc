"""``train --instances`` writes a three-class instance model; ``predict --instances`` splits touching objects by
their interiors with it, and keeps the distance-transform splitting for other models (``--instance-mode``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from unet_studio.cli import main
from unet_studio.core import presets
from unet_studio.core.config import ModelConfig, TrainConfig
from unet_studio.core.model import ModelInfo, UNet, save_model
from unet_studio.core.predict import THREE_CLASS_NAMES, instance_classes, instance_output_description, match_instances


def touching_objects(shape=(64, 96)) -> np.ndarray:
    """Two touching discs and two long rods touching end to end (which distance maxima cut into pieces)."""
    rows, cols = np.indices(shape)
    labels = np.zeros(shape, np.int32)
    labels[(rows - 20) ** 2 + (cols - 18) ** 2 <= 100] = 1
    labels[((rows - 20) ** 2 + (cols - 36) ** 2 <= 100) & (labels == 0)] = 2
    labels[46:51, 4:44] = 3
    labels[46:51, 44:90] = 4
    return labels


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


@pytest.fixture
def tiny_preset(monkeypatch):
    def tiny(name, in_channels=1, n_classes=2):
        return (ModelConfig(in_channels=in_channels, n_classes=n_classes, base_channels=4, depth=3, norm="batch"),
                TrainConfig(patch_size=32, batch_size=2, epochs=1, steps_per_epoch=4, eval_every=4))

    monkeypatch.setattr(presets, "preset_configs", tiny)


@pytest.fixture
def instance_folders(tmp_path):
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        truth = touching_objects()
        tifffile.imwrite(images / f"im{i}.tif", ((truth > 0) * 200 + rng.integers(0, 40, truth.shape)).astype(np.uint8))
        tifffile.imwrite(labels / f"im{i}.tif", truth.astype(np.uint16))
    return images, labels


def _run(capsys, *args):
    code = main([*map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_train_instances_writes_a_three_class_instance_model(tmp_path, capsys, tiny_preset, instance_folders):
    images, labels = instance_folders
    code, _, err = _run(capsys, "train", "--images", images, "--labels", labels, "--out", tmp_path / "m",
                        "--instances", "--instance-mode", "three_class", "--threads", 1, "--device", "cpu")
    assert code == 0, err
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["class_names"] == list(THREE_CLASS_NAMES) and meta["class_values"] == [0, 1, 2]
    assert meta["extra"]["instance_output"]["mode"] == "three_class"
    assert meta["extra"]["instance_output"]["channels"] == {"background": 0, "interior": 1, "boundary": 2}
    assert meta["train_config"]["instance_output"] == "three_class"
    # trained as the application trains objects (core.presets.for_instances)
    assert meta["train_config"]["use_border_weights"] and meta["train_config"]["loss"] == "dice_ce"


def test_train_instances_by_default_keeps_two_classes(tmp_path, capsys, tiny_preset, instance_folders):
    """The default --instance-mode is distance (chosen on validation data: see cli/train.py)."""
    images, labels = instance_folders
    code, _, err = _run(capsys, "train", "--images", images, "--labels", labels, "--out", tmp_path / "m",
                        "--instances", "--threads", 1, "--device", "cpu")
    assert code == 0, err
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["class_names"] == ["background", "foreground"] and meta["class_values"] == [0, 1]
    assert "instance_output" not in meta["extra"]


def test_instance_mode_without_instances_is_refused(tmp_path, capsys, instance_folders):
    images, labels = instance_folders
    code, _, err = _run(capsys, "train", "--images", images, "--labels", labels, "--out", tmp_path / "m",
                        "--instance-mode", "distance")
    assert code != 0 and "Traceback" not in err
    assert "--instances" in err and len(err.strip().splitlines()) == 1


def class_net() -> UNet:
    """A three-class U-Net (base 4, depth 3) whose classes are bands of its normalised input x: background below
    0.3, boundary from 0.3 to 0.6, interior above (identity kernels carry x to the head, as in test_predict_cli)."""
    net = UNet(in_channels=1, n_classes=3, base_channels=4, depth=3)
    with torch.no_grad():
        for param in net.parameters():
            param.zero_()
        for conv in (net.down[0][0], net.down[0][3], net.up[-1].conv[0], net.up[-1].conv[3]):
            conv.weight[0, 0, 1, 1] = 1.0
        net.head.weight[2, 0], net.head.bias[2] = 20.0, -6.0  # boundary: 20 (x - 0.3)
        net.head.weight[1, 0], net.head.bias[1] = 40.0, -18.0  # interior: 40 (x - 0.45), above boundary from 0.6
    return net.eval()


@pytest.fixture
def three_class_model(tmp_path):
    folder = tmp_path / "model3"
    net = class_net()
    info = ModelInfo(net.config, class_values=[0, 1, 2], class_names=list(THREE_CLASS_NAMES),
                     normalization={"method": "percentile", "low": 0.0, "high": 100.0},
                     extra={"instance_output": instance_output_description()})
    save_model(folder, net, info)
    return folder


def test_predict_instances_separates_touching_objects_and_keeps_rods_whole(tmp_path, capsys, three_class_model):
    truth = touching_objects()
    classes = instance_classes(truth)
    (tmp_path / "in").mkdir()
    # background, interior, boundary as the bands of class_net: the network outputs the ideal classes
    tifffile.imwrite(tmp_path / "in" / "a.tif", np.choose(classes, [100, 1000, 450]).astype(np.uint16))
    code, _, err = _run(capsys, "predict", "--model", three_class_model, "--images", tmp_path / "in", "--out",
                        tmp_path / "out", "--instances", "--device", "cpu", "--min-size", 0)
    assert code == 0, err
    labels = tifffile.imread(tmp_path / "out" / "a_labels.tif")
    np.testing.assert_array_equal(labels, classes)  # the class band network works as meant
    objects = tifffile.imread(tmp_path / "out" / "a_instances.tif")
    match = match_instances(objects, truth)
    assert objects.max() == 4 and match.tp == 4 and match.best_iou.min() > 0.9, match
    # the same model with the old splitting: distance maxima along the rods cut them
    code, _, err = _run(capsys, "predict", "--model", three_class_model, "--images", tmp_path / "in", "--out",
                        tmp_path / "out2", "--instances", "--device", "cpu", "--min-size", 0,
                        "--instance-mode", "distance")
    assert code == 0, err
    assert match_instances(tifffile.imread(tmp_path / "out2" / "a_instances.tif"), truth).tp < 4


def test_three_class_mode_on_a_two_class_model_is_refused(tmp_path, capsys):
    net = UNet(in_channels=1, n_classes=2, base_channels=4, depth=3).eval()
    save_model(tmp_path / "m2", net, ModelInfo(net.config, class_values=[0, 1], class_names=["background", "nucleus"]))
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a.tif", np.zeros((32, 32), np.uint8))
    code, _, err = _run(capsys, "predict", "--model", tmp_path / "m2", "--images", tmp_path / "in", "--out",
                        tmp_path / "out", "--instances", "--instance-mode", "three_class")
    assert code != 0 and "Traceback" not in err
    assert "--instance-mode" in err and "distance" in err and len(err.strip().splitlines()) == 1
