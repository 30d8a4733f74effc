"""Learning from unlabelled pixels (``TrainConfig.unlabelled_loss``): targets, loss, and what a run does
with them on the bundled sample (sparse labels drawn from an Otsu mask of its first slice)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from skimage.filters import threshold_otsu

from unet_studio.core.config import ModelConfig, TrainConfig
from unet_studio.core.errors import ConfigError
from unet_studio.core.model import load_model
from unet_studio.core.presets import SNAP_TO_EDGES, preset_configs, snapping_to_edges
from unet_studio.core.train.data import TrainingSet
from unet_studio.core.train.loop import train
from unet_studio.core.train.unlabelled import (
    confident_targets, contrast_sigma, edge_smoothness_loss, pseudo_label_loss, second_view,
)
from unet_studio.resources import sample_image_path

pytestmark = pytest.mark.usefixtures("restore_torch_threads")

TINY = ModelConfig(base_channels=4, depth=2, norm="batch")


def _sample(sparse: bool) -> TrainingSet:
    image = tifffile.imread(sample_image_path())[0].astype(np.float32)
    image = (image - image.min()) / (image.max() - image.min())
    labels = np.where(image > threshold_otsu(image), 2, 1).astype(np.int64)
    if sparse:  # every 16th row and column: about 12% of the pixels, like strokes across the image
        keep = np.zeros(labels.shape, bool)
        keep[::16, :] = keep[:, ::16] = True
        labels = np.where(keep, labels, 0)
    return TrainingSet([image[None]], [labels], 2)


def _weights(dataset: TrainingSet, tmp_path, **changes) -> dict[str, torch.Tensor]:
    """The weights after 8 steps (the model folder a run writes)."""
    config = TrainConfig(**{**dict(patch_size=64, batch_size=2, epochs=1, steps_per_epoch=8, eval_every=8,
                                   preview_every=100, val_fraction=0.0, seed=0, device="cpu", num_threads=1,
                                   warmup_steps=1), **changes})
    out = tmp_path / f"model-{len(list(tmp_path.iterdir()))}"
    assert list(train(dataset, TINY, config, out_dir=out))[-1].done
    return load_model(out)[0].state_dict()


def _same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_confident_targets_are_the_unlabelled_confident_pixels():
    logits = torch.tensor([[[[4.0, 0.1, -4.0, 4.0]], [[0.0, 0.0, 0.0, 0.0]]]])  # (1, 2, 1, 4)
    labels = torch.tensor([[[0, 0, 0, 2]]])
    targets, mask = confident_targets(logits, labels, 0.9)
    assert targets.tolist() == [[[0, 0, 1, 0]]]
    # confident and unlabelled: pixels 0 and 2; pixel 1 is unsure, pixel 3 labelled (its label rules there)
    assert mask.tolist() == [[[True, False, True, False]]]


def test_the_pseudo_label_loss_pulls_towards_the_targets_and_is_zero_without_any():
    logits = torch.zeros((1, 2, 1, 3), requires_grad=True)
    targets = torch.tensor([[[1, 0, 1]]])
    mask = torch.tensor([[[True, False, False]]])
    loss = pseudo_label_loss(logits, targets, mask)
    loss.backward()
    assert loss.item() == pytest.approx(np.log(2))
    grad = logits.grad[0, :, 0]
    assert grad[1, 0] < 0 < grad[0, 0]  # descending raises class 1 at pixel 0
    assert torch.all(grad[:, 1:] == 0)  # nothing outside the mask
    empty = pseudo_label_loss(logits, targets, torch.zeros_like(mask))
    assert empty.item() == 0 and empty.requires_grad


def test_the_second_view_differs_in_intensity_only():
    generator = torch.Generator().manual_seed(0)
    images = torch.rand((2, 1, 32, 32), generator=generator)
    view = second_view(images, None, generator, channels_last=False)
    assert view.shape == images.shape and not torch.allclose(view, images)
    # same geometry: the perturbation is monotone per patch (gamma, contrast, brightness) plus weak noise
    for index in range(2):
        correlation = np.corrcoef(images[index].ravel().numpy(), view[index].ravel().numpy())[0, 1]
        assert correlation > 0.8


def _step_image(width: int = 24) -> torch.Tensor:
    """(1, 1, 16, width): dark left half, bright right half, the edge between columns width/2 - 1 and width/2."""
    image = torch.zeros((1, 1, 16, width))
    image[..., width // 2:] = 1.0
    return image


def _split_at(column: int, width: int = 24, sure: float = 12.0) -> torch.Tensor:
    """Logits (1, 2, 16, width) saying class 0 left of ``column`` and class 1 from it on."""
    logits = torch.zeros((1, 2, 16, width))
    logits[:, 0, :, :column] = sure
    logits[:, 1, :, column:] = sure
    return logits


def test_the_edge_smoothness_loss_is_lowest_with_the_class_boundary_on_the_intensity_edge():
    image = _step_image()
    costs = {column: edge_smoothness_loss(_split_at(column), image, sigma=0.1).item() for column in range(4, 21)}
    assert min(costs, key=costs.get) == 12  # the edge of the image
    assert costs[12] < 1e-3 < costs[9] and costs[12] < 1e-3 < costs[15]
    # one class everywhere costs nothing either: the labelled loss is what keeps both classes
    assert edge_smoothness_loss(_split_at(0), image, sigma=0.1).item() < 1e-4


def test_an_edge_in_any_channel_is_an_edge():
    flat = torch.zeros((1, 1, 16, 24))
    two_channels = torch.cat([flat, _step_image()], dim=1)  # the edge is in the second channel only
    assert edge_smoothness_loss(_split_at(12), two_channels, sigma=0.1).item() < 1e-3
    # the first channel alone says nothing: a boundary anywhere costs the same
    assert edge_smoothness_loss(_split_at(12), flat, sigma=0.1).item() == pytest.approx(
        edge_smoothness_loss(_split_at(8), flat, sigma=0.1).item())


def test_the_automatic_contrast_scale_makes_faint_edges_count_as_much_as_strong_ones():
    image = _step_image()
    # 16 rows of 23 horizontal pairs, one across the edge (difference 1); no vertical difference
    assert contrast_sigma(image) == pytest.approx(np.sqrt((1 / 23) / 2))
    assert contrast_sigma(0.05 * image) == pytest.approx(0.05 * contrast_sigma(image))
    assert contrast_sigma(torch.zeros((1, 1, 8, 8))) == 1e-3  # a flat patch: no division by zero
    for column in (8, 12):
        faint = edge_smoothness_loss(_split_at(column), 0.05 * image).item()
        assert faint == pytest.approx(edge_smoothness_loss(_split_at(column), image).item(), abs=1e-6)
    faint_image = 0.05 * image
    on_edge, off_edge = (edge_smoothness_loss(_split_at(c), faint_image).item() for c in (12, 8))
    assert on_edge < 1e-3 < off_edge
    # a fixed scale misses the faint edge: a boundary on it costs as much as one anywhere else
    assert edge_smoothness_loss(_split_at(12), 0.05 * image, sigma=0.5).item() == pytest.approx(
        edge_smoothness_loss(_split_at(8), 0.05 * image, sigma=0.5).item(), rel=0.05)


def test_the_edge_smoothness_loss_crops_the_image_to_an_unpadded_networks_output():
    image = _step_image(width=32)  # edge between columns 15 and 16; the output covers columns 4-27
    on_edge = edge_smoothness_loss(_split_at(12), image, sigma=0.1).item()  # output column 12 = image column 16
    assert on_edge < 1e-3 < edge_smoothness_loss(_split_at(9), image, sigma=0.1).item()


@pytest.mark.parametrize("mode", ["pseudo", "consistency"])
def test_full_masks_train_exactly_as_without(mode, tmp_path):
    dense = _sample(sparse=False)
    assert _same(_weights(dense, tmp_path), _weights(dense, tmp_path, unlabelled_loss=mode, unlabelled_from=0.0,
                                                     edge_smoothness=1.0))


def test_sparse_labels_follow_intensity_edges_with_edge_smoothness(tmp_path):
    sparse = _sample(sparse=True)
    plain = _weights(sparse, tmp_path)
    smoothed = _weights(sparse, tmp_path, edge_smoothness=1.0)
    assert not _same(plain, smoothed)
    assert all(torch.isfinite(v).all() for v in smoothed.values() if v.is_floating_point())


@pytest.mark.parametrize("mode", ["pseudo", "consistency"])
def test_sparse_labels_learn_from_their_unlabelled_pixels_once_it_starts(mode, tmp_path):
    sparse = _sample(sparse=True)
    plain = _weights(sparse, tmp_path)
    assert _same(plain, _weights(sparse, tmp_path, unlabelled_loss=mode, unlabelled_from=1.0))  # never started
    learned = _weights(sparse, tmp_path, unlabelled_loss=mode, unlabelled_from=0.0, unlabelled_threshold=0.5)
    assert not _same(plain, learned)
    assert all(torch.isfinite(v).all() for v in learned.values() if v.is_floating_point())


@pytest.mark.parametrize("changes", [dict(unlabelled_loss="teacher"), dict(unlabelled_weight=-1.0),
                                     dict(unlabelled_threshold=1.0), dict(unlabelled_from=1.5)])
def test_bad_settings_are_refused(changes):
    with pytest.raises(ConfigError, match="unlabelled"):
        TrainConfig(**changes)


@pytest.mark.parametrize("changes", [dict(edge_smoothness=-0.5), dict(edge_sigma=-0.1)])
def test_bad_edge_settings_are_refused(changes):
    with pytest.raises(ConfigError, match="edge_smoothness"):
        TrainConfig(**changes)



def test_the_fast_preset_snaps_sparse_labels_to_edges():
    fast = preset_configs("fast")[1]
    assert fast.edge_smoothness == SNAP_TO_EDGES > 0 and fast.edge_sigma == 0.0  # the batch's own contrast
    assert snapping_to_edges(fast, False).edge_smoothness == 0.0
    assert snapping_to_edges(preset_configs("classic")[1]).edge_smoothness == SNAP_TO_EDGES
