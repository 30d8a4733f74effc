"""Losses: unlabelled pixels have no influence, class balancing, the paper's border weight map."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from unet_studio.core.train.losses import (
    border_weight_map,
    class_weights_from_counts,
    masked_cross_entropy,
    masked_dice_loss,
    segmentation_loss,
)


def _problem(seed: int = 0, n_classes: int = 3):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, n_classes, 16, 16, generator=gen)
    targets = torch.randint(1, n_classes + 1, (2, 16, 16), generator=gen)
    unlabelled = torch.rand(2, 16, 16, generator=gen) < 0.7
    targets[unlabelled] = 0
    border = torch.rand(2, 16, 16, generator=gen) * 5
    return logits, targets, unlabelled, border


def _loss_and_grad(logits, targets, kind, class_weights, border):
    logits = logits.clone().requires_grad_(True)
    loss = segmentation_loss(logits, targets, kind, class_weights, border)
    loss.backward()
    return loss.detach(), logits.grad


@pytest.mark.parametrize("kind", ["ce", "dice_ce"])
@pytest.mark.parametrize("balanced", [False, True])
@pytest.mark.parametrize("with_border", [False, True])
def test_unlabelled_pixels_change_neither_loss_nor_gradients(kind, balanced, with_border):
    logits, targets, unlabelled, border = _problem()
    class_weights = torch.tensor([0.5, 2.0, 1.0]) if balanced else None
    border = border if with_border else None
    loss, grad = _loss_and_grad(logits, targets, kind, class_weights, border)

    # Whatever the network predicts at unlabelled pixels, even NaN and huge values ...
    changed = logits.clone()
    noise = torch.randn_like(changed) * 100
    mask = unlabelled[:, None].expand_as(changed)
    changed[mask] = noise[mask]
    changed[0, 0][unlabelled[0]] = float("nan")
    # ... and whatever border weight sits there:
    if border is not None:
        border = torch.where(unlabelled, torch.full_like(border, 1e6), border)
    loss2, grad2 = _loss_and_grad(changed, targets, kind, class_weights, border)

    assert torch.isfinite(loss2)
    torch.testing.assert_close(loss2, loss)
    torch.testing.assert_close(grad2[~mask], grad[~mask])
    assert torch.all(grad2[mask] == 0)
    assert grad[~mask].abs().sum() > 0


def test_no_labelled_pixel_gives_zero_loss_and_gradient():
    logits = torch.randn(1, 2, 8, 8, requires_grad=True)
    targets = torch.zeros(1, 8, 8, dtype=torch.long)
    loss = segmentation_loss(logits, targets, "dice_ce")
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert torch.all(logits.grad == 0)


def test_cross_entropy_matches_torch_on_fully_labelled_batch():
    logits, targets, _, _ = _problem()
    targets = targets.clamp_min(1)
    weights = torch.tensor([0.5, 2.0, 1.0])
    expected = torch.nn.functional.cross_entropy(logits, targets - 1, weight=weights)
    torch.testing.assert_close(masked_cross_entropy(logits, targets, weights), expected)


def test_dice_is_zero_loss_for_a_perfect_prediction():
    targets = torch.randint(1, 3, (1, 8, 8))
    logits = torch.nn.functional.one_hot(targets - 1, 2).permute(0, 3, 1, 2).float() * 50
    assert float(masked_dice_loss(logits, targets)) < 1e-3


def test_class_weights_balance_frequencies():
    weights = class_weights_from_counts([30, 10, 0])
    # inverse frequency (4/3 and 4), scaled so the mean weight over the labelled pixels is 1
    np.testing.assert_allclose(weights, [2 / 3, 2.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(class_weights_from_counts([30, 10], power=0.0), [1.0, 1.0])


def _discs(centres, radius, shape=(21, 31)):
    rows, cols = np.indices(shape)
    instances = np.zeros(shape, np.int32)
    for label, (r, c) in enumerate(centres, start=1):
        instances[(rows - r) ** 2 + (cols - c) ** 2 <= radius**2] = label
    return instances


def test_weight_map_two_discs_with_a_one_pixel_gap_hand_computed():
    # Disc A covers columns 6..14 of row 10, disc B columns 16..24: pixel (10, 15) is the gap.
    instances = _discs([(10, 10), (10, 20)], 4)
    assert instances[10, 14] == 1 and instances[10, 15] == 0 and instances[10, 16] == 2
    w = border_weight_map(instances, w0=10, sigma=5)
    # d1 = d2 = 1: w0 * exp(-(1 + 1)^2 / (2 * 5^2))
    assert w[10, 15] == pytest.approx(10 * math.exp(-4 / 50), rel=1e-5)
    assert w[10, 15] == pytest.approx(9.2312, abs=1e-4)
    assert np.all(w[instances > 0] == 0)  # objects carry no border weight


def test_weight_map_two_touching_discs_hand_computed():
    # Disc B at (10, 19) touches disc A: (10, 14) is in A, (10, 15) in B.
    instances = _discs([(10, 10), (10, 19)], 4)
    assert instances[10, 14] == 1 and instances[10, 15] == 2
    w = border_weight_map(instances, w0=10, sigma=5)
    # Background pixel (7, 14), by hand: nearest A pixel (8, 13) at sqrt(2), nearest B pixel (8, 16)
    # at sqrt(5).
    expected = 10 * math.exp(-((math.sqrt(2) + math.sqrt(5)) ** 2) / 50)
    assert w[7, 14] == pytest.approx(expected, rel=1e-5)
    # Every pixel against a brute-force computation of d1, d2 (pixel centre distances).
    rows, cols = np.indices(instances.shape)
    dists = []
    for label in (1, 2):
        pr, pc = np.nonzero(instances == label)
        d = np.sqrt((rows[..., None] - pr) ** 2 + (cols[..., None] - pc) ** 2).min(-1)
        dists.append(d)
    d1, d2 = np.minimum(*dists), np.maximum(*dists)
    brute = np.where(instances == 0, 10 * np.exp(-((d1 + d2) ** 2) / 50), 0)
    np.testing.assert_allclose(w, brute, atol=2e-3)  # beyond 4 sigma the term is dropped (< 2e-3)


def test_weight_map_needs_two_objects():
    instances = _discs([(10, 10)], 4)
    assert not border_weight_map(instances).any()
