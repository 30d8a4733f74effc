"""Blockwise prediction (core.predict.blockwise): equal to single-process prediction, objects joined across
block borders, a stopped run continues, a bad chunk fails only its block."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

zarr = pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")
distributed = pytest.importorskip("distributed")

from unet_studio.core.errors import ImageWriteError  # noqa: E402
from unet_studio.core.model import ModelInfo, UNet, load_model, save_model  # noqa: E402
from unet_studio.core.predict import (  # noqa: E402
    BlockwiseConfig,
    iter_blockwise,
    model_loads,
    predict_blockwise,
    predict_probabilities,
    work_folder,
)
from model_helpers import threshold_net  # noqa: E402
from zarr_helpers import release_zarr_threads  # noqa: E402,F401  (autouse: zarr's threads end with each test)


@pytest.fixture(scope="module", autouse=True)
def dask_offload_thread():
    """distributed unpacks big messages on a thread of its own that lives as long as the process: start it
    before the tests that check for threads left behind."""
    import asyncio

    from distributed.utils import offload

    asyncio.run(offload(lambda: None))


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    with cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def random_model(tmp_path_factory) -> Path:
    """A tiny same-mode network with random weights: every pixel's output depends on its context."""
    torch.manual_seed(3)
    net = UNet(in_channels=1, n_classes=2, base_channels=4, depth=3).eval()
    with torch.no_grad():
        for param in net.parameters():
            param.mul_(1.5)  # outputs that vary across the image, so that a wrong context shows
    folder = tmp_path_factory.mktemp("random_model")
    save_model(folder, net, ModelInfo(net.config, [0, 1], ["background", "object"], normalization={"method": "none"}))
    return folder


@pytest.fixture(scope="module")
def nuclei_model(tmp_path_factory) -> Path:
    """Bright (> 0.5) pixels are objects."""
    net = threshold_net()
    folder = tmp_path_factory.mktemp("nuclei_model")
    save_model(folder, net, ModelInfo(net.config, [0, 1], ["background", "nucleus"], normalization={"method": "none"}))
    return folder


def as_zarr(path: Path, image: np.ndarray, chunks=(256, 256)):
    array = zarr.create_array(str(path), shape=image.shape, chunks=chunks, dtype=image.dtype,
                              config={"write_empty_chunks": True})
    array[...] = image
    return array


def outputs(folder: Path, *keys: str) -> dict[str, Path]:
    names = {"labels": "a_labels.ome.zarr", "probabilities": "a_probabilities.ome.zarr",
             "instances": "a_instances.ome.zarr", "measurements": "a_measurements.csv"}
    return {key: folder / names[key] for key in keys}


def level0(path: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(path), mode="r")["0"][...])


def test_on_a_cluster_equals_single_process_prediction(tmp_path, client, random_model):
    image = np.random.default_rng(0).random((2000, 3000), dtype=np.float32)
    source = as_zarr(tmp_path / "image.zarr", image, chunks=(512, 512))
    targets = outputs(tmp_path / "out", "labels", "probabilities")
    last = predict_blockwise(source, random_model, targets, BlockwiseConfig(block_size=512), client)
    assert last.outputs == targets and not last.failures
    expected = predict_probabilities(load_model(random_model)[0], image)
    got = level0(targets["probabilities"])
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert expected[1].std() > 0.05  # the network's output varies: the comparison means something
    np.testing.assert_array_equal(level0(targets["labels"]), expected.argmax(0))
    assert not work_folder(targets["labels"]).exists()
    # the model was loaded once per worker, not once per block (24 blocks)
    assert set(client.run(model_loads).values()) == {1}


@pytest.mark.parametrize(("shape", "block"), [((333, 517), 100), ((97, 1001), 64)])
def test_odd_sizes_in_one_process_equal_single_process_prediction(tmp_path, random_model, shape, block):
    image = np.random.default_rng(1).random(shape, dtype=np.float32)
    targets = outputs(tmp_path, "probabilities")
    predict_blockwise(as_zarr(tmp_path / "image.zarr", image, (50, 70)), random_model, targets,
                      BlockwiseConfig(block_size=block))
    expected = predict_probabilities(load_model(random_model)[0], image)
    np.testing.assert_allclose(level0(targets["probabilities"]), expected, atol=1e-4)


def disks(shape, centres, radius) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image = np.zeros(shape, np.float32)
    for cy, cx in centres:
        image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 1.0
    return image


def test_an_object_across_a_block_corner_is_one_instance_measured_once(tmp_path, client, nuclei_model):
    centres = [(128, 128), (40, 40), (128, 200), (200, 60)]  # the first sits on the corner of four blocks
    image = disks((256, 256), centres, 15)
    targets = outputs(tmp_path, "instances", "measurements")
    last = predict_blockwise(as_zarr(tmp_path / "image.zarr", image, (64, 64)), nuclei_model, targets,
                             BlockwiseConfig(block_size=128), client)
    assert not last.failures
    instances = level0(targets["instances"])
    corner = instances[113:144, 113:144][disks((31, 31), [(15, 15)], 15) > 0]
    assert len(np.unique(corner)) == 1 and corner[0] > 0
    assert sorted(np.unique(instances)) == list(range(len(centres) + 1))
    rows = list(csv.DictReader(targets["measurements"].open()))
    assert len(rows) == len(centres)
    row = next(r for r in rows if int(r["label"]) == corner[0])
    assert int(float(row["area_px"])) == int((image[113:144, 113:144] > 0).sum())
    assert abs(float(row["centroid_y_px"]) - 128) < 0.5 and abs(float(row["centroid_x_px"]) - 128) < 0.5


def touching_pairs(shape, block, radius=9) -> tuple[np.ndarray, int]:
    """Pairs of discs that touch (centres 1.8 radii apart) along oblique lines, each pair's point of contact
    on a block face, so that the face crosses the line between the two; and the number of discs."""
    image = np.zeros(shape, np.float32)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    count = 0
    for i, face in enumerate(range(block, shape[1], block)):  # vertical faces
        for j, y in enumerate(range(24, shape[0] - 24, 48)):
            angle = np.deg2rad(25 + 20 * ((i + j) % 3))  # 25, 45, 65 degrees from the face's normal
            dy, dx = 0.9 * radius * np.sin(angle), 0.9 * radius * np.cos(angle)
            for sign in (-1, 1):
                cy, cx = y + sign * dy, face - 0.5 + sign * dx
                image[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = 1.0
                count += 1
    return image, count


def test_touching_objects_that_a_block_face_separates_stay_two(tmp_path, nuclei_model):
    image, count = touching_pairs((256, 256), 64)
    source = as_zarr(tmp_path / "image.zarr", image, (64, 64))
    whole = outputs(tmp_path / "whole", "instances")
    predict_blockwise(source, nuclei_model, whole, BlockwiseConfig(block_size=256))
    expected = level0(whole["instances"])
    assert expected.max() == count  # one block: the watershed separates every touching pair
    blocks = outputs(tmp_path / "blocks", "instances", "measurements")
    predict_blockwise(source, nuclei_model, blocks, BlockwiseConfig(block_size=64))
    got = level0(blocks["instances"])
    assert got.max() == count
    assert len(list(csv.DictReader(blocks["measurements"].open()))) == count
    for label in range(1, count + 1):  # each object is the one-block object, cut by faces or not
        mine = got == label
        theirs = expected == np.bincount(expected[mine]).argmax()
        assert (mine & theirs).sum() / (mine | theirs).sum() > 0.95


def test_a_stopped_run_continues_and_ends_identical(tmp_path, random_model):
    image = np.random.default_rng(2).random((300, 300), dtype=np.float32)
    source = as_zarr(tmp_path / "image.zarr", image, (100, 100))
    config = BlockwiseConfig(block_size=100)
    clean = outputs(tmp_path / "clean", "labels", "probabilities", "instances")
    predict_blockwise(source, random_model, clean, config)
    targets = outputs(tmp_path / "stopped", "labels", "probabilities", "instances")
    steps = iter_blockwise(source, random_model, targets, config)
    for step in steps:  # stop (as Ctrl-C or a kill would) after 4 of the 9 blocks
        if step.stage == "predict" and step.done == 4:
            break
    steps.close()
    assert not any(path.exists() for path in targets.values())  # nothing half-done is published
    assert len(list((work_folder(targets["labels"]) / "blocks").iterdir())) == 4
    last = predict_blockwise(source, random_model, targets, config)
    assert last.skipped == 4 and last.outputs == targets
    for key in targets:
        np.testing.assert_array_equal(level0(targets[key]), level0(clean[key]))


def test_a_corrupt_chunk_fails_its_block_only_and_is_named(tmp_path, random_model):
    image = np.random.default_rng(4).random((200, 300), dtype=np.float32)
    source = as_zarr(tmp_path / "image.zarr", image, (100, 100))
    (tmp_path / "image.zarr" / "c" / "1" / "2").write_bytes(b"not a chunk")
    targets = outputs(tmp_path / "out", "labels")
    last = predict_blockwise(source, random_model, targets, BlockwiseConfig(block_size=100))
    assert last.stage == "failed" and last.outputs is None
    # the block of that chunk and the three whose margins of context reach into it
    assert sorted(line.split(" ")[1] for line in last.failures) == ["0_1", "0_2", "1_1", "1_2"]
    assert all("chunk c/1/2" in line and "cannot be read" in line for line in last.failures)
    assert last.done == 2  # the other blocks were predicted
    assert len(list((work_folder(targets["labels"]) / "blocks").iterdir())) == 2
    assert not targets["labels"].exists()


def test_a_missing_chunk_fails_its_blocks_unless_missing_chunks_are_read_as_zeros(tmp_path, random_model):
    image = np.random.default_rng(5).random((200, 300), dtype=np.float32)
    source = as_zarr(tmp_path / "image.zarr", image, (100, 100))
    (tmp_path / "image.zarr" / "c" / "0" / "0").unlink()  # an incomplete copy
    targets = outputs(tmp_path / "out", "labels")
    last = predict_blockwise(source, random_model, targets, BlockwiseConfig(block_size=100))
    assert last.stage == "failed" and not targets["labels"].exists()
    assert sorted(line.split(" ")[1] for line in last.failures) == ["0_0", "0_1", "1_0", "1_1"]
    assert all("c/0/0" in line and "missing" in line for line in last.failures)
    zeros = outputs(tmp_path / "zeros", "labels")
    last = predict_blockwise(source, random_model, zeros, BlockwiseConfig(block_size=100, missing_chunks="fill"))
    assert not last.failures and level0(zeros["labels"]).shape == image.shape


def test_odd_sizes_on_a_cluster_equal_single_process_prediction(tmp_path, client, random_model):
    image = np.random.default_rng(6).random((333, 517), dtype=np.float32)
    targets = outputs(tmp_path, "probabilities")
    last = predict_blockwise(as_zarr(tmp_path / "image.zarr", image, (50, 70)), random_model, targets,
                             BlockwiseConfig(block_size=100), client)
    assert not last.failures
    expected = predict_probabilities(load_model(random_model)[0], image)
    np.testing.assert_allclose(level0(targets["probabilities"]), expected, atol=1e-4)


def test_outputs_that_hold_data_are_refused_without_overwrite(tmp_path, random_model):
    source = as_zarr(tmp_path / "image.zarr", np.zeros((64, 64), np.float32))
    targets = outputs(tmp_path / "out", "labels")
    targets["labels"].mkdir(parents=True)
    (targets["labels"] / "keep.txt").write_text("mine")
    with pytest.raises(ImageWriteError, match="--overwrite"):
        predict_blockwise(source, random_model, targets, BlockwiseConfig(block_size=64))
    assert (targets["labels"] / "keep.txt").read_text() == "mine"
    predict_blockwise(source, random_model, targets, BlockwiseConfig(block_size=64), overwrite=True)
    assert not (targets["labels"] / "keep.txt").exists() and level0(targets["labels"]).shape == (64, 64)


class DieOnce:
    """A per-pixel predictor (foreground = sigmoid(20 (x - 0.5))) whose first call kills its worker process."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        import os

        if not self.marker.exists():
            self.marker.write_text("died")
            os._exit(1)  # as a worker killed by the cluster's scheduler or out of memory
        foreground = torch.sigmoid(20 * (batch[:, :1] - 0.5))
        return torch.cat([1 - foreground, foreground], dim=1)


def test_a_worker_that_dies_is_replaced_and_the_result_is_complete(tmp_path, nuclei_model):
    image = disks((256, 256), [(128, 128), (40, 200)], 20) * 0.8 + 0.1
    source = as_zarr(tmp_path / "image.zarr", image.astype(np.float32), (64, 64))
    marker = tmp_path / "died"
    targets = outputs(tmp_path / "out", "probabilities")
    # a cluster of its own: the replaced worker's watcher threads end when it closes
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        last = predict_blockwise(source, nuclei_model, targets, BlockwiseConfig(block_size=128), client,
                                 predictor=DieOnce(marker))
    assert marker.read_text() == "died" and last.outputs == targets and not last.failures
    expected = predict_probabilities(load_model(nuclei_model)[0], image, predictor=DieOnce(marker))
    np.testing.assert_allclose(level0(targets["probabilities"]), expected, atol=1e-6)


def test_a_run_stopped_while_moving_its_outputs_into_place_finishes_the_move(tmp_path, random_model):
    image = np.random.default_rng(5).random((128, 128), dtype=np.float32)
    source = as_zarr(tmp_path / "image.zarr", image, (64, 64))
    config = BlockwiseConfig(block_size=64)
    clean = outputs(tmp_path / "clean", "labels", "probabilities")
    predict_blockwise(source, random_model, clean, config)
    targets = outputs(tmp_path / "out", "labels", "probabilities")
    steps = iter_blockwise(source, random_model, targets, config)
    for step in steps:
        if step.stage == "pyramid" and step.done == step.total:
            break
    steps.close()
    # as a kill between the two renames leaves it: the marker written, the labels moved, not the rest
    work = work_folder(targets["labels"])
    (work / "publishing").write_text("moving the outputs into place")
    (work / targets["labels"].name).rename(targets["labels"])
    last = predict_blockwise(source, random_model, targets, config)
    assert last.outputs == targets and not work.exists()
    for key in targets:
        np.testing.assert_array_equal(level0(targets[key]), level0(clean[key]))
