"""Augmentation on the batch: image and labels stay aligned, crops are large enough, intensity only
touches the image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unet_studio.core.train import augment as aug

# Two-channel pixel values of the three classes: affinely independent, so a bilinear mix equals one of
# them only when all its weight is on pixels of that class.
VALUES = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], np.float32)


def _blocks(batch: int, side: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2, S, S) images made of constant blocks; the labels (1, 2, 3) are a function of the pixels."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 3, (batch, side // 12 + 1, side // 12 + 1))
    index = np.kron(coarse, np.ones((12, 12), np.int64))[:, :side, :side]
    images = torch.from_numpy(np.moveaxis(VALUES[index], -1, 1).copy())
    labels = torch.from_numpy(index + 1)
    return images, labels


def _label_of(images: torch.Tensor) -> torch.Tensor:
    """The class whose value a (B, 2, Y, X) image has exactly at each pixel, else 0."""
    out = torch.zeros((images.shape[0],) + images.shape[2:], dtype=torch.long)
    for k, v in enumerate(VALUES, start=1):
        out[(images - torch.from_numpy(v)[:, None, None]).abs().amax(1) < 1e-4] = k
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_geometric_warp_keeps_image_and_labels_aligned(seed):
    params = aug.AugmentParams()
    patch = 64
    crop = aug.crop_size(patch, params)
    images, labels = _blocks(8, crop, seed)
    weights = images[:, 0] * 2  # a weight map that is also a function of the pixels
    gen = torch.Generator().manual_seed(seed)
    grid = aug.random_grid(8, patch, crop, params, gen, torch.device("cpu"))
    out_images, out_labels, out_weights = aug.warp(images, labels, weights, grid)
    assert out_images.shape == (8, 2, patch, patch) and out_labels.shape == (8, patch, patch)
    assert out_labels.dtype == torch.long
    # Where the bilinear image is exactly one of the values (inside a block), the nearest-neighbour
    # labels must be the label of that value.
    derived = _label_of(out_images)
    inside = derived > 0
    assert inside.float().mean() > 0.6
    assert torch.equal(out_labels[inside], derived[inside])
    # Next to block borders nearest and bilinear may differ only by one block: labels stay plausible.
    assert set(torch.unique(out_labels).tolist()) <= {1, 2, 3}
    torch.testing.assert_close(out_weights, out_images[:, 0] * 2)
    # The transforms really differ between samples (not one transform for the batch).
    assert not torch.equal(out_labels[0], out_labels[1])


def test_crop_is_large_enough_for_every_transform():
    params = aug.AugmentParams()
    patch = 96
    crop = aug.crop_size(patch, params)
    gen = torch.Generator().manual_seed(0)
    grid = aug.random_grid(256, patch, crop, params, gen, torch.device("cpu"))
    # Sample positions (pixel centres) stay inside the crop: no label is lost at the border.
    assert grid.abs().max() <= 1.0 - 1.0 / crop


def test_flips_and_right_angle_rotations_are_exact_permutations():
    params = aug.AugmentParams(rotate_deg=0.0, scale=(1.0, 1.0), elastic_sigma=0.0)
    patch = 32
    images = torch.arange(8 * patch * patch, dtype=torch.float32).reshape(8, 1, patch, patch)
    labels = torch.arange(8 * patch * patch).reshape(8, patch, patch) % 1000 + 1
    gen = torch.Generator().manual_seed(3)
    grid = aug.random_grid(8, patch, patch, params, gen, torch.device("cpu"))
    out_images, out_labels, _ = aug.warp(images, labels, None, grid)
    for b in range(8):
        source = images[b, 0]
        candidates = [torch.rot90(t, k) for t in (source, source.flip(-1)) for k in range(4)]
        assert any(torch.allclose(out_images[b, 0], c, atol=1e-3) for c in candidates)
        torch.testing.assert_close(out_labels[b], (out_images[b, 0].round().long() % 1000) + 1)


def test_elastic_deformation_moves_pixels_by_about_sigma():
    params = aug.AugmentParams(flips=False, rotate_deg=0.0, scale=(1.0, 1.0), elastic_sigma=10.0)
    crop, patch = 200, 64
    gen = torch.Generator().manual_seed(0)
    grid = aug.random_grid(64, patch, crop, params, gen, torch.device("cpu"))
    plain = aug.random_grid(64, patch, crop, params.__class__(flips=False, rotate_deg=0.0, scale=(1.0, 1.0),
                                                               elastic_sigma=0.0), gen, torch.device("cpu"))
    displacement = (grid - plain) * crop / 2  # back to pixels
    # The coarse 3x3 nodes (corners, centre) carry N(0, 10 px) displacements; smooth in between.
    corners = displacement[:, [0, 0, -1, -1], [0, -1, 0, -1]].reshape(-1)
    assert 7.0 < float(corners.std()) < 13.0
    # Smooth: neighbouring pixels move almost together.
    assert float((displacement[:, 1:] - displacement[:, :-1]).abs().max()) < 3.0


def test_intensity_changes_images_only_and_stays_finite():
    images, labels = _blocks(16, 48)
    gen = torch.Generator().manual_seed(0)
    out = aug.intensity(images, aug.AugmentParams(p_intensity=1.0), gen)
    assert out.shape == images.shape and torch.isfinite(out).all()
    assert not torch.allclose(out, images)
    # Order within a sample is mostly preserved (monotone changes plus small noise).
    corr = [np.corrcoef(out[b].ravel(), images[b].ravel())[0, 1] for b in range(16)]
    assert min(corr) > 0.8


def test_augment_batch_end_to_end_and_without_augmentation():
    params = aug.AugmentParams()
    crop = aug.crop_size(32, params)
    images, labels = _blocks(4, crop)
    gen = torch.Generator().manual_seed(0)
    out_images, out_labels, out_weights = aug.augment_batch(images, labels, None, 32, params, gen)
    assert out_images.shape == (4, 2, 32, 32) and out_labels.shape == (4, 32, 32) and out_weights is None
    same = aug.augment_batch(images, labels, None, 32, None, gen)
    top = (crop - 32) // 2
    torch.testing.assert_close(same[0], images[..., top : top + 32, top : top + 32])
