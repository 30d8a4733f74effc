"""`unet-studio predict` with OME-Zarr in and out (issue 18 item 1), on a tiny model that thresholds the image."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch

zarr = pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")

from model_helpers import save_threshold_model  # noqa: E402
from ome_zarr.io import parse_url  # noqa: E402
from ome_zarr.reader import Reader  # noqa: E402
from zarr_helpers import release_zarr_threads  # noqa: E402,F401  (autouse: zarr's threads end with each test)

from unet_studio.cli import main  # noqa: E402
from unet_studio.core import io  # noqa: E402

SHAPE = (520, 600)  # two levels with the default pyramid (the next one's longer side 300 >= 256)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_threshold_model(tmp_path_factory.mktemp("model"))


def nuclei(shape=SHAPE, seed=0) -> np.ndarray:
    """Dark background (100) with bright disks (1000) scattered over the image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, 100, np.uint16)
    for cy, cx in rng.integers(20, min(shape) - 20, (12, 2)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 12**2] = 1000
    return image


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def levels(path) -> list[tuple[int, ...]]:
    node = list(Reader(parse_url(str(path)))())[0]
    return [tuple(level.shape) for level in node.data]


def test_predict_on_ome_zarr_writes_ome_zarr_with_a_pyramid_equal_to_the_tiff_outputs(tmp_path, model_dir, capsys):
    image = nuclei()
    io.write_ome_zarr(tmp_path / "cells.ome.zarr", image, "yx", "intensity", pixel_size=(0.5, 0.5), chunks=(256, 256))
    io.write_image(tmp_path / "cells.tif", image, "YX", pixel_size=(0.5, 0.5), unit="µm")
    common = ["--model", model_dir, "--probabilities", "--instances", "--tile-size", "256", "--device", "cpu"]
    code, stdout, err = run_cli(capsys, "--images", tmp_path / "cells.ome.zarr", "--out", tmp_path / "z", *common)
    assert code == 0, err
    out = tmp_path / "z"
    assert sorted(p.name for p in out.iterdir()) == [
        "cells_instances.ome.zarr", "cells_labels.ome.zarr", "cells_probabilities.ome.zarr"]
    assert levels(out / "cells_labels.ome.zarr") == [SHAPE, (260, 300)]
    assert levels(out / "cells_probabilities.ome.zarr") == [(2,) + SHAPE, (2, 260, 300)]
    code, _, err = run_cli(capsys, "--images", tmp_path / "cells.tif", "--out", tmp_path / "t", *common)
    assert code == 0, err
    labels = io.open_zarr(out / "cells_labels.ome.zarr")
    assert labels.axes == "yx" and labels.pixel_size == pytest.approx((0.5, 0.5))
    expected = tifffile.imread(tmp_path / "t" / "cells_labels.tif")
    np.testing.assert_array_equal(labels.levels[0][:], expected)
    assert set(np.unique(labels.levels[1][:])) <= {0, 1}  # mode, never averaged
    assert 0 < expected.mean() < 1  # the disks were found
    probabilities = io.open_zarr(out / "cells_probabilities.ome.zarr")
    assert probabilities.axes == "cyx" and probabilities.channel_names == ["background", "nucleus"]
    np.testing.assert_allclose(probabilities.levels[0][:], tifffile.imread(tmp_path / "t" / "cells_probabilities.tif"),
                               atol=1e-6)
    instances = io.open_zarr(out / "cells_instances.ome.zarr").levels[0][:]
    np.testing.assert_array_equal(instances, tifffile.imread(tmp_path / "t" / "cells_instances.tif"))


def test_existing_output_is_refused_without_overwrite(tmp_path, model_dir, capsys):
    io.write_ome_zarr(tmp_path / "a.ome.zarr", nuclei((64, 64)), "yx", "intensity")
    args = ["--model", model_dir, "--images", tmp_path / "a.ome.zarr", "--out", tmp_path / "out", "--device", "cpu"]
    assert run_cli(capsys, *args)[0] == 0
    before = io.open_zarr(tmp_path / "out" / "a_labels.ome.zarr").levels[0][:]
    code, _, err = run_cli(capsys, *args)
    assert code != 0 and "a_labels.ome.zarr" in err and "--overwrite" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, *args, "--overwrite")
    assert code == 0, err
    np.testing.assert_array_equal(io.open_zarr(tmp_path / "out" / "a_labels.ome.zarr").levels[0][:], before)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a_labels.ome.zarr"]  # no temporary left


def test_out_named_ome_zarr_implies_zarr_and_format_zarr_on_a_tiff(tmp_path, model_dir, capsys):
    io.write_image(tmp_path / "a.tif", nuclei((64, 80)), "YX")
    common = ["--model", model_dir, "--images", tmp_path / "a.tif", "--device", "cpu"]
    code, _, err = run_cli(capsys, *common, "--out", tmp_path / "result.ome.zarr", "--probabilities")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.tif", "result.ome.zarr",
                                                          "result_probabilities.ome.zarr"]
    assert io.open_zarr(tmp_path / "result.ome.zarr").shape == (64, 80)
    code, _, err = run_cli(capsys, *common, "--out", tmp_path / "folder", "--format", "zarr")
    assert code == 0, err
    assert [p.name for p in (tmp_path / "folder").iterdir()] == ["a_labels.ome.zarr"]


def test_plain_zarr_input_needs_axes(tmp_path, model_dir, capsys):
    path = tmp_path / "plain.zarr"
    zarr.create_array(str(path), shape=(64, 80), chunks=(32, 32), dtype="uint16")[:] = nuclei((64, 80))
    common = ["--model", model_dir, "--images", path, "--out", tmp_path / "out", "--device", "cpu"]
    code, _, err = run_cli(capsys, *common)
    assert code != 0 and "Traceback" not in err
    assert (f"{path} is a zarr array without OME metadata: give its axes with --axes, e.g. --axes yx or "
            "--axes czyx") in err
    code, _, err = run_cli(capsys, *common, "--axes", "yx")
    assert code == 0, err
    assert io.open_zarr(tmp_path / "out" / "plain_labels.ome.zarr").shape == (64, 80)


def test_a_missing_chunk_fails_that_image_naming_the_chunk_and_the_others_go_on(tmp_path, model_dir, capsys):
    images = tmp_path / "images"
    io.write_ome_zarr(images / "good.ome.zarr", nuclei((64, 64)), "yx", "intensity", chunks=(32, 32))
    io.write_ome_zarr(images / "torn.ome.zarr", nuclei((64, 64)), "yx", "intensity", chunks=(32, 32))
    (images / "torn.ome.zarr" / "0" / "c" / "1" / "0").unlink()
    code, stdout, err = run_cli(capsys, "--model", model_dir, "--images", images, "--out", tmp_path / "out",
                                "--device", "cpu")
    assert code == 1
    assert "FAILED torn.ome.zarr" in err and "chunk 0/c/1/0 is missing" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good_labels.ome.zarr"]


@pytest.mark.parametrize("axes", ["zyx", "tyx"])
def test_a_stack_keeps_its_axis_and_probabilities_follow_the_ngff_axis_order(tmp_path, model_dir, capsys, axes):
    stack = np.stack([nuclei((64, 72), seed=k) for k in range(3)])
    io.write_ome_zarr(tmp_path / "s.ome.zarr", stack, axes, "intensity", chunks=(1, 32, 32))
    io.write_image(tmp_path / "s.tif", stack, axes.upper())
    common = ["--model", model_dir, "--probabilities", "--device", "cpu"]
    assert run_cli(capsys, *common, "--images", tmp_path / "s.ome.zarr", "--out", tmp_path / "z")[0] == 0
    assert run_cli(capsys, *common, "--images", tmp_path / "s.tif", "--out", tmp_path / "t")[0] == 0
    labels = io.open_zarr(tmp_path / "z" / "s_labels.ome.zarr")
    assert labels.axes == axes
    np.testing.assert_array_equal(labels.levels[0][:], tifffile.imread(tmp_path / "t" / "s_labels.tif"))
    probabilities = io.open_zarr(tmp_path / "z" / "s_probabilities.ome.zarr")
    expected = tifffile.imread(tmp_path / "t" / "s_probabilities.tif")  # (S, K, Y, X)
    if axes == "zyx":
        assert probabilities.axes == "czyx"
        expected = expected.transpose(1, 0, 2, 3)
    else:
        assert probabilities.axes == "tcyx"
    np.testing.assert_allclose(probabilities.levels[0][:], expected, atol=1e-6)


def test_a_failure_halfway_leaves_no_zarr_output_and_keeps_the_old_one(tmp_path, model_dir):
    from unet_studio.core.config import InferConfig
    from unet_studio.core.model import load_model
    from unet_studio.core.predict import ExportConfig, export_image

    stack = np.stack([nuclei((64, 64), seed=k) for k in range(3)])
    io.write_ome_zarr(tmp_path / "s.ome.zarr", stack, "zyx", "intensity")
    out = tmp_path / "out"
    out.mkdir()
    io.write_ome_zarr(out / "s_labels.ome.zarr", np.full((4, 4), 7, np.uint8), "yx", "labels")
    model, info = load_model(model_dir, "cpu")
    calls = []

    def fails_on_the_third_slice(x):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the GPU fell off the bus")
        return torch.softmax(model(x), dim=1)

    config = ExportConfig(probabilities=True, format="zarr")
    with io.read_image(tmp_path / "s.ome.zarr") as image, pytest.raises(RuntimeError, match="fell off"):
        for _ in export_image(model, info, image, out, "s", config, InferConfig(tile_size=64, batch_size=1),
                              predictor=fails_on_the_third_slice):
            pass
    assert sorted(p.name for p in out.iterdir()) == ["s_labels.ome.zarr"]  # no temporary folder, nothing new
    np.testing.assert_array_equal(io.open_zarr(out / "s_labels.ome.zarr").levels[0][:], 7)
