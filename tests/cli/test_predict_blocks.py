"""`unet-studio predict` block by block in one process (issue 18): `--block-size` without `--dask`, images
too big for memory routed there by themselves, and a run killed with SIGKILL that a second run finishes
with the output of an uninterrupted one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

zarr = pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")

from model_helpers import save_threshold_model  # noqa: E402
from zarr_helpers import release_zarr_threads  # noqa: E402,F401  (autouse: zarr's threads end with each test)

from unet_studio.cli import main, predict_dask  # noqa: E402
from unet_studio.core import io  # noqa: E402
from unet_studio.core.model import ModelInfo, UNet, save_model  # noqa: E402
from unet_studio.core.predict import work_folder  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_threshold_model(tmp_path_factory.mktemp("model"))


def nuclei(shape, count, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.full(shape, 100, np.uint16)
    for cy, cx in rng.integers(20, min(shape) - 20, (count, 2)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= 11**2] = 1000
    return image


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(["predict", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_block_size_without_dask_predicts_block_by_block_in_this_process(tmp_path, model_dir, capsys):
    image = nuclei((300, 420), 14)
    io.write_ome_zarr(tmp_path / "cells.ome.zarr", image, "yx", "intensity", chunks=(128, 128))
    io.write_image(tmp_path / "cells.tif", image, "YX")
    common = ["--model", model_dir, "--probabilities", "--instances", "--device", "cpu"]
    code, _, err = run_cli(capsys, "--images", tmp_path / "cells.ome.zarr", "--out", tmp_path / "b",
                           "--block-size", 128, *common)
    assert code == 0, err
    assert "block by block in this process" in err
    code, _, err = run_cli(capsys, "--images", tmp_path / "cells.tif", "--out", tmp_path / "w", *common)
    assert code == 0, err
    labels = io.open_zarr(tmp_path / "b" / "cells_labels.ome.zarr").levels[0][:]
    np.testing.assert_array_equal(labels, tifffile.imread(tmp_path / "w" / "cells_labels.tif"))
    probabilities = io.open_zarr(tmp_path / "b" / "cells_probabilities.ome.zarr").levels[0][:]
    np.testing.assert_allclose(probabilities, tifffile.imread(tmp_path / "w" / "cells_probabilities.tif"), atol=1e-4)
    blocks = io.open_zarr(tmp_path / "b" / "cells_instances.ome.zarr").levels[0][:]
    whole = tifffile.imread(tmp_path / "w" / "cells_instances.tif")
    assert blocks.max() == whole.max() > 5  # the same objects, those cut by block faces joined again
    np.testing.assert_array_equal(blocks > 0, whole > 0)


def test_an_image_too_big_for_the_memory_goes_block_by_block_instead_of_being_refused(tmp_path, model_dir, capsys,
                                                                                       monkeypatch):
    image = nuclei((256, 300), 8)
    io.write_ome_zarr(tmp_path / "big.ome.zarr", image, "yx", "intensity", chunks=(128, 128))
    io.write_image(tmp_path / "small.tif", image[:64, :64], "YX")
    # This machine's memory, as the check sees it, holds the small image whole and not the big one
    monkeypatch.setattr(predict_dask, "available_ram", lambda: 2 * 64 * 64 * 4 * 8)
    assert predict_dask.needs_blocks(tmp_path / "big.ome.zarr", None, 2)
    assert not predict_dask.needs_blocks(tmp_path / "small.tif", None, 2)
    elsewhere = tmp_path.parent / f"{tmp_path.name}_tiff"
    elsewhere.mkdir()
    tifffile.imwrite(elsewhere / "tiled.tif", image, tile=(128, 128))
    tifffile.imwrite(elsewhere / "strips.tif", image)
    assert predict_dask.needs_blocks(elsewhere / "tiled.tif", None, 2)  # read by region
    assert not predict_dask.needs_blocks(elsewhere / "strips.tif", None, 2)  # refused with what to do, as before
    code, out, err = run_cli(capsys, "--images", tmp_path, "--out", tmp_path / "out", "--model", model_dir,
                             "--device", "cpu")
    assert code == 0, err
    assert "big.ome.zarr: too big to predict whole" in err
    assert "small" not in err.split("too big")[0]  # the small image is predicted whole, as before
    # (a folder that holds an OME-Zarr input gets OME-Zarr outputs for all its images)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["big_labels.ome.zarr", "small_labels.ome.zarr"]
    labels = io.open_zarr(tmp_path / "out" / "big_labels.ome.zarr").levels[0][:]
    assert labels.shape == image.shape and 0 < labels.mean() < 1
    np.testing.assert_array_equal(labels[:64, :64], io.open_zarr(tmp_path / "out" / "small_labels.ome.zarr").levels[0][:])


def _slow_model(folder):
    """A small network with random weights: a few milliseconds per block, so that a kill lands mid-run."""
    torch.manual_seed(0)
    net = UNet(in_channels=1, n_classes=2, base_channels=8, depth=3).eval()
    save_model(folder, net, ModelInfo(net.config, [0, 1], ["background", "object"], normalization={"method": "none"}))
    return folder


def _finished(blocks: Path) -> list[Path]:
    """The finished-block records (an unfinished one is a hidden temporary file, see core.io.atomic)."""
    return [p for p in blocks.iterdir() if not p.name.startswith(".")]


def test_a_run_killed_with_sigkill_is_finished_by_the_next_run_as_if_never_stopped(tmp_path):
    image = np.random.default_rng(1).random((1024, 1024), dtype=np.float32)
    io.write_ome_zarr(tmp_path / "in" / "big.ome.zarr", image, "yx", "intensity", chunks=(128, 128))
    model = _slow_model(tmp_path / "model")
    command = [sys.executable, "-m", "unet_studio.cli", "predict", "--model", str(model), "--images",
               str(tmp_path / "in" / "big.ome.zarr"), "--block-size", "128", "--probabilities", "--device", "cpu"]
    clean = subprocess.run(command + ["--out", str(tmp_path / "clean")], capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr

    out = tmp_path / "killed"
    labels = out / "big_labels.ome.zarr"
    blocks = work_folder(labels) / "blocks"
    process = subprocess.Popen(command + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while process.poll() is None and not (blocks.is_dir() and len(_finished(blocks)) >= 12):
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    done = len(_finished(blocks))  # a block being written when the kill came is a hidden temporary file
    assert 12 <= done < 64 and not labels.exists()  # killed mid-run: nothing half-done is published

    again = subprocess.run(command + ["--out", str(out)], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert f"continuing an earlier run: {done} block(s) already done" in again.stderr
    for name in ("big_labels.ome.zarr", "big_probabilities.ome.zarr"):
        np.testing.assert_array_equal(io.open_zarr(out / name).levels[0][:],
                                      io.open_zarr(tmp_path / "clean" / name).levels[0][:])
    assert not work_folder(labels).exists()
