"""Export's measurements use the pixel size the person set in the project when the image file has none."""

from __future__ import annotations

import csv
import io as textio

import numpy as np
import pytest
import tifffile
import torch

from unet_studio.core.config import InferConfig, ModelConfig
from unet_studio.core.io import read_image, write_image
from unet_studio.core.model import ModelInfo, UNet
from unet_studio.core.predict import ExportConfig, export_image


def disks(shape=(48, 64)) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, 10, np.uint16)
    for cy, cx in ((14, 14), (30, 44)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 64] = 200
    return image


def bright_is_class_1(x: torch.Tensor) -> torch.Tensor:
    logits = torch.cat([torch.zeros_like(x[:, :1]), 20 * (x[:, :1] - 0.5)], dim=1)
    return torch.softmax(logits, dim=1)


def export(path, folder, config):
    info = ModelInfo(ModelConfig(in_channels=1, n_classes=2, base_channels=4, depth=2), [0, 255],
                     ["background", "nucleus"], {"method": "percentile", "low": 0.0, "high": 100.0})
    net = UNet(in_channels=1, n_classes=2, base_channels=4, depth=2).eval()
    with read_image(path) as stack:
        list(export_image(net, info, stack, folder, "out", config, InferConfig(tile_size=32), bright_is_class_1))
    return list(csv.DictReader(textio.StringIO((folder / "out_measurements.csv").read_text())))


@pytest.mark.parametrize("file_calibrated", [False, True])
def test_measurements_come_in_the_project_pixel_size_unless_the_file_has_one(tmp_path, file_calibrated):
    path = tmp_path / "in.tif"
    if file_calibrated:
        write_image(path, disks(), "YX", pixel_size=(2.0, 2.0), unit="µm")
    else:
        tifffile.imwrite(path, disks())
    config = ExportConfig(labels=True, measurements=True, pixel_size=(0.5, 0.5), unit="µm")
    rows = export(path, tmp_path, config)
    size = 2.0 if file_calibrated else 0.5  # the file's own calibration wins
    assert len(rows) == 2 and "area_um2" in rows[0]
    for row in rows:
        assert float(row["area_um2"]) == pytest.approx(float(row["area_px"]) * size * size)
    with read_image(tmp_path / "out_labels.tif") as labels:  # the outputs carry the calibration too
        assert labels.pixel_size == pytest.approx((size, size)) and labels.unit == "µm"


def test_without_any_pixel_size_measurements_stay_in_pixels(tmp_path):
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, disks())
    rows = export(path, tmp_path, ExportConfig(labels=False, measurements=True))
    assert len(rows) == 2 and not any(key.endswith("um2") for key in rows[0])
