"""export_image: every output of one image, the input's axes and calibration kept, nothing partial left."""

from __future__ import annotations

import csv
import io as textio

import numpy as np
import pytest
import tifffile
import torch

from unet_studio.core.config import InferConfig, ModelConfig
from unet_studio.core.errors import InferenceError
from unet_studio.core.io import read_image, write_image
from unet_studio.core.model import ModelInfo, UNet
from unet_studio.core.predict import ExportConfig, export_image, foreground_classes, output_paths

ALL = ExportConfig(labels=True, probabilities=True, instances=True, measurements=True)


def disks(shape=(48, 64), centres=((14, 14), (30, 44)), radius=8) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, 10, np.uint16)
    for cy, cx in centres:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 200
    return image


def per_pixel(x: torch.Tensor) -> torch.Tensor:
    """A "network" that calls bright pixels (normalised > 0.5) class 1 of 2: no training needed."""
    logits = torch.cat([torch.zeros_like(x[:, :1]), 20 * (x[:, :1] - 0.5)], dim=1)
    return torch.softmax(logits, dim=1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = UNet(in_channels=1, n_classes=2, base_channels=4, depth=2).eval()
    info = ModelInfo(ModelConfig(in_channels=1, n_classes=2, base_channels=4, depth=2), [0, 255],
                     ["background", "nucleus"], {"method": "percentile", "low": 0.0, "high": 100.0})
    return net, info


def run(model, path, folder, config=ALL, predictor=per_pixel, **infer):
    net, info = model
    with read_image(path) as stack:
        steps = list(export_image(net, info, stack, folder, "out", config, InferConfig(tile_size=32, **infer),
                                  predictor))
    return steps


@pytest.mark.parametrize("axes, frames", [("TYX", True), ("ZYX", False)])
def test_a_stack_keeps_its_axis_and_calibration(model, tmp_path, axes, frames):
    path = tmp_path / "in.tif"
    write_image(path, np.stack([disks(), disks()[::-1], disks()[:, ::-1]]), axes, pixel_size=(0.5, 0.5), unit="µm")
    steps = run(model, path, tmp_path)
    assert steps[-1].outputs == output_paths(tmp_path, "out", ALL) and steps[-1].fraction == 1.0
    for key in ("labels", "probabilities", "instances"):
        with tifffile.TiffFile(tmp_path / f"out_{key}.tif") as tif:
            meta = tif.imagej_metadata
            assert (meta.get("frames"), meta.get("slices")) == ((3, None) if frames else (None, 3)), (key, meta)
        with read_image(tmp_path / f"out_{key}.tif") as out:
            assert out.pixel_size == pytest.approx((0.5, 0.5)) and out.unit == "µm"
    with tifffile.TiffFile(tmp_path / "out_probabilities.tif") as tif:
        assert tif.imagej_metadata["channels"] == 2
        assert list(tif.imagej_metadata["Labels"][:2]) == ["background", "nucleus"]
    labels = tifffile.imread(tmp_path / "out_labels.tif")
    np.testing.assert_array_equal(labels[1], np.where(disks()[::-1] > 100, 255, 0))
    rows = list(csv.DictReader(textio.StringIO((tmp_path / "out_measurements.csv").read_text())))
    assert [r["slice"] for r in rows] == ["0", "0", "1", "1", "2", "2"]


def test_objects_come_from_every_class_but_the_background():
    assert foreground_classes([0, 1, 2], ["background", "a", "b"]) == [1, 2]
    assert foreground_classes([1, 2, 3], ["x", "Background", "y"]) == [0, 2]
    assert foreground_classes([5, 0, 7], ["x", "y", "z"]) == [0, 2]
    assert foreground_classes([0, 1, 2], ["background", "a", "b"], chosen=[2]) == [2]
    with pytest.raises(Exception, match="not class values"):
        foreground_classes([0, 1], ["background", "a"], chosen=[3])


def test_a_failure_in_the_middle_leaves_no_file(model, tmp_path):
    path = tmp_path / "in.tif"
    write_image(path, np.stack([disks()] * 3), "ZYX")
    calls = []

    def fails_on_the_third_batch(x):
        calls.append(1)
        if len(calls) == 3:
            raise InferenceError("simulated failure in the middle of a stack")
        return per_pixel(x)

    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InferenceError, match="simulated"):
        run(model, path, out, predictor=fails_on_the_third_batch, batch_size=1)
    assert list(out.iterdir()) == []  # no half-written file, no temporary left behind


def test_stopping_the_generator_leaves_no_file(model, tmp_path):
    path = tmp_path / "in.tif"
    write_image(path, np.stack([disks()] * 3), "ZYX")
    net, info = model
    out = tmp_path / "out"
    out.mkdir()
    with read_image(path) as stack:
        steps = export_image(net, info, stack, out, "out", ALL, InferConfig(tile_size=32), per_pixel)
        next(steps)
        steps.close()
    assert list(out.iterdir()) == []


def test_nan_probabilities_are_never_written(model, tmp_path):
    path = tmp_path / "in.tif"
    write_image(path, disks(), "YX")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(InferenceError, match="NaN"):
        run(model, path, out, predictor=lambda x: torch.full_like(per_pixel(x), float("nan")))
    assert list(out.iterdir()) == []
