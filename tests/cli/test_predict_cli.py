"""`unet-studio predict` end to end on a tiny model folder whose network thresholds the image."""

from __future__ import annotations

import csv
import io as textio

import numpy as np
import pytest
import tifffile
import torch

from unet_studio.cli import main
from unet_studio.core.io import stack as io
from unet_studio.core.model.checkpoint import ModelInfo, save_model
from unet_studio.core.model.unet import UNet, UpBlock


def threshold_net(threshold: float = 0.5) -> UNet:
    """A same-mode U-Net (base 4, depth 3) whose foreground logit is 20 * (x - threshold) of its input:
    identity 3x3 kernels carry channel 0 down the top level, the deeper path contributes nothing."""
    net = UNet(in_channels=1, n_classes=2, base_channels=4, depth=3)
    with torch.no_grad():
        for param in net.parameters():
            param.zero_()
        top = [net.down[0][0], net.down[0][3]]
        up_top = net.up[-1]
        assert isinstance(up_top, UpBlock)
        top += [up_top.conv[0], up_top.conv[3]]  # its first conv sees [skip, upsampled]: take skip channel 0
        for conv in top:
            conv.weight[0, 0, 1, 1] = 1.0
        net.head.weight[1, 0] = 20.0
        net.head.bias[1] = -20.0 * threshold
    return net.eval()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    net = threshold_net()
    info = ModelInfo(net.config, class_values=[0, 255], class_names=["background", "nucleus"],
                     normalization={"method": "percentile", "low": 0.0, "high": 100.0})
    save_model(folder, net, info)
    return folder


def nuclei_image(shape=(70, 90), centres=((30, 25), (30, 47), (50, 75)), radius=11) -> np.ndarray:
    """Dark background (100), bright disks (1000); the first two touch."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, 100, np.uint16)
    for cy, cx in centres:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 1000
    return image


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    io.write_image(folder / "a.tif", nuclei_image(), "YX", pixel_size=(0.5, 0.5), unit="µm")
    io.write_image(folder / "stack.tif", np.stack([nuclei_image(), nuclei_image()[:, ::-1], nuclei_image()[::-1]]), "ZYX")
    return folder


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_outputs_have_the_right_shapes_types_and_values(tmp_path, images, model_dir, capsys):
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "--model", model_dir, "--images", images, "--out", out,
                                "--probabilities", "--instances", "--measure", "--tile-size", "64", "--device", "cpu")
    assert code == 0, err
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{n}_{kind}" for n in ("a", "stack")
        for kind in ("labels.tif", "probabilities.tif", "instances.tif", "measurements.csv"))
    image = nuclei_image()
    labels = tifffile.imread(out / "a_labels.tif")
    assert labels.shape == (70, 90) and labels.dtype == np.uint8
    np.testing.assert_array_equal(labels, np.where(image > 500, 255, 0))  # class values of the model
    probs = tifffile.imread(out / "a_probabilities.tif")
    assert probs.shape == (2, 70, 90) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    instances = tifffile.imread(out / "a_instances.tif")
    assert instances.shape == (70, 90) and instances.max() == 3  # the touching pair is split
    assert len(np.unique(instances[image > 500])) == 3 and (instances[image <= 500] == 0).all()
    with io.read_image(out / "a_labels.tif") as stack:  # calibration carried over
        assert stack.pixel_size == pytest.approx((0.5, 0.5)) and stack.unit == "µm"
    rows = list(csv.DictReader(textio.StringIO((out / "a_measurements.csv").read_text())))
    assert len(rows) == 3 and {int(r["label"]) for r in rows} == {1, 2, 3}
    assert float(rows[0]["mean_intensity"]) == pytest.approx(1000)
    assert float(rows[0]["area_um2"]) == pytest.approx(float(rows[0]["area_px"]) * 0.25)

    stack_labels = tifffile.imread(out / "stack_labels.tif")
    assert stack_labels.shape == (3, 70, 90) and set(np.unique(stack_labels)) == {0, 255}
    np.testing.assert_array_equal(stack_labels[1], np.where(image[:, ::-1] > 500, 255, 0))
    assert tifffile.imread(out / "stack_probabilities.tif").shape == (3, 2, 70, 90)
    assert tifffile.imread(out / "stack_instances.tif").reshape(3, -1).max(1).tolist() == [3, 3, 3]
    stack_rows = list(csv.DictReader(textio.StringIO((out / "stack_measurements.csv").read_text())))
    assert [r["slice"] for r in stack_rows] == ["0"] * 3 + ["1"] * 3 + ["2"] * 3
    assert "a.tif: a_labels.tif" in stdout and "Traceback" not in err


def test_unreadable_file_is_reported_and_the_others_go_on(tmp_path, images, model_dir, capsys):
    (images / "broken.tif").write_bytes(b"II*\x00" + b"\x00" * 10)  # a TIFF header and nothing else
    (images / "notes.png").write_text("not an image")
    io.write_image(images / "rgb.tif", np.zeros((40, 40, 3), np.uint8), "YXS")  # 3 channels, model takes 1
    out = tmp_path / "out"
    code, stdout, err = run_cli(capsys, "--model", model_dir, "--images", images, "--out", out, "--probabilities")
    assert code == 1
    assert "Traceback" not in err
    failures = [line for line in err.splitlines() if "FAILED" in line]
    assert len(failures) == 3
    assert any("broken.tif" in line for line in failures) and any("notes.png" in line for line in failures)
    assert any("rgb.tif" in line and "3 channels but the model expects 1" in line for line in failures)
    assert sorted(p.name for p in out.iterdir()) == [
        "a_labels.tif", "a_probabilities.tif", "stack_labels.tif", "stack_probabilities.tif"]  # no partial files
    assert "2 of 5 images predicted" in err


# A failure in the middle of a stack leaves nothing: tests/core/test_export.py (a predictor that fails).


def test_thresholds_and_single_file(tmp_path, model_dir, capsys):
    path = tmp_path / "one.tif"
    image = np.linspace(0, 1000, 64 * 64).reshape(64, 64).astype(np.uint16)
    io.write_image(path, image, "YX")
    out = tmp_path / "out"
    code, _, err = run_cli(capsys, "--model", model_dir, "--images", path, "--out", out,
                           "--thresholds", "0,0.99")
    assert code == 0, err
    labels = tifffile.imread(out / "one_labels.tif")
    plain_fraction = (image / 1000.0 > 0.5).mean()
    assert 0 < (labels == 255).mean() < plain_fraction  # a stricter foreground threshold keeps fewer pixels


def test_the_models_calibrated_thresholds_are_the_default(tmp_path, capsys):
    folder = tmp_path / "calibrated"
    net = threshold_net()
    info = ModelInfo(net.config, class_values=[0, 255], class_names=["background", "nucleus"],
                     normalization={"method": "percentile", "low": 0.0, "high": 100.0}, thresholds=[0.0, 0.99])
    save_model(folder, net, info)
    path = tmp_path / "ramp.tif"
    image = np.linspace(0, 1000, 64 * 64).reshape(64, 64).astype(np.uint16)
    io.write_image(path, image, "YX")
    code, _, err = run_cli(capsys, "--model", folder, "--images", path, "--out", tmp_path / "a")
    assert code == 0, err
    assert "using the model's thresholds" in err and "nucleus 0.99" in err
    strict = tifffile.imread(tmp_path / "a" / "ramp_labels.tif")
    code, _, err = run_cli(capsys, "--model", folder, "--images", path, "--out", tmp_path / "b", "--thresholds", "0,0")
    assert code == 0 and "using the model's thresholds" not in err
    plain = tifffile.imread(tmp_path / "b" / "ramp_labels.tif")
    assert 0 < (strict == 255).sum() < (plain == 255).sum()
    assert (plain == 255).mean() == pytest.approx((image / 1000.0 > 0.5).mean(), abs=0.01)


def test_tta_option(tmp_path, images, model_dir, capsys):
    code, _, err = run_cli(capsys, "--model", model_dir, "--images", images / "a.tif", "--out", tmp_path / "o", "--tta")
    assert code == 0, err
    labels = tifffile.imread(tmp_path / "o" / "a_labels.tif")
    assert np.array_equal(labels == 255, nuclei_image() == 1000)  # a symmetric per-pixel rule: TTA agrees


def test_bad_model_folder_is_one_clear_line(tmp_path, images, capsys):
    code, _, err = run_cli(capsys, "--model", tmp_path / "missing", "--images", images, "--out", tmp_path / "o")
    assert code == 2 and "is not a folder" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_wrong_number_of_thresholds(tmp_path, images, model_dir, capsys):
    code, _, err = run_cli(capsys, "--model", model_dir, "--images", images, "--out", tmp_path / "o",
                           "--thresholds", "0.5")
    assert code == 2 and "--thresholds needs 2 values" in err


def test_tile_size_too_small_for_the_model(tmp_path, images, model_dir, capsys):
    code, _, err = run_cli(capsys, "--model", model_dir, "--images", images, "--out", tmp_path / "o", "--tile-size", "16")
    assert code == 2 and "--tile-size 16 is too small for this model; use at least" in err
