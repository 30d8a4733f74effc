"""Losses: per-pixel cross-entropy that ignores unlabelled pixels, class balancing, the paper's border
weight map, and an optional Dice term.

Targets follow the core's convention: 0 = unlabelled (ignored), 1..K = class K (output channel K-1).
Nothing computed at an unlabelled pixel reaches the loss or its gradient.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from torch.nn import functional as F


def class_weights_from_counts(counts, power: float = 1.0) -> np.ndarray:
    """Class weights that balance class frequencies (the paper's w_c), normalised to a mean of 1 over
    the labelled pixels.

    ``counts`` (K,) labelled pixels per class; classes with no pixel get weight 0. ``power`` 1 gives
    inverse frequency, 0.5 a softer balance, 0 no balancing.
    """
    counts = np.asarray(counts, np.float64)
    weights = np.zeros_like(counts)
    present = counts > 0
    if not present.any():
        return weights.astype(np.float32)
    weights[present] = (counts[present] / counts.sum()) ** (-power)
    weights *= counts.sum() / (weights * counts).sum()
    return weights.astype(np.float32)


def border_weight_map(instances: np.ndarray, w0: float = 10.0, sigma: float = 5.0) -> np.ndarray:
    """The border term of the paper's weight map: ``w0 * exp(-(d1 + d2)^2 / (2 sigma^2))``.

    ``instances`` (Y, X): 0 = background, 1..N = objects. ``d1`` and ``d2`` are the distances (pixel
    centre to pixel centre) to the nearest and second-nearest object. The term is set on background
    pixels only (the separating borders); it is 0 on objects and where fewer than two objects exist.
    Each object's distance map is computed in its bounding box grown by the reach of the term only
    (where ``d1 + d2`` can still be small), so the cost scales with the objects, not the image.
    """
    instances = np.asarray(instances)
    out = np.zeros(instances.shape, np.float32)
    ids = np.unique(instances)
    ids = ids[ids != 0]
    if len(ids) < 2 or w0 == 0:
        return out
    reach = int(np.ceil(4 * sigma)) + 1  # exp(-(4 sigma)^2 / 2 sigma^2) = exp(-8): negligible beyond
    d1 = np.full(instances.shape, np.inf, np.float32)
    d2 = np.full(instances.shape, np.inf, np.float32)
    boxes = ndimage.find_objects(instances.astype(np.int64))
    for label in ids:
        box = boxes[label - 1]
        if box is None:
            continue
        window = tuple(slice(max(s.start - reach, 0), min(s.stop + reach, n))
                       for s, n in zip(box, instances.shape))
        dist = ndimage.distance_transform_edt(instances[window] != label).astype(np.float32)
        a, b = d1[window], d2[window]
        # Keep the two smallest distances per pixel.
        d2[window] = np.minimum(b, np.maximum(a, dist))
        d1[window] = np.minimum(a, dist)
    total = d1 + d2
    term = w0 * np.exp(-(total**2) / (2 * sigma**2))
    term[~np.isfinite(total)] = 0
    out[:] = np.where(instances == 0, term, 0.0)
    return out


def pixel_weights(targets: torch.Tensor, class_weights: torch.Tensor | None,
                  border: torch.Tensor | None) -> torch.Tensor:
    """Per-pixel weights ``w_c(target) + border`` (1 without class weights), 0 at unlabelled pixels."""
    labelled = targets > 0
    if class_weights is None:
        weights = labelled.float()
    else:
        table = torch.cat([class_weights.new_zeros(1), class_weights.float()])
        weights = table[targets]
    if border is not None:
        weights = weights + border.float() * labelled
    return weights


def _mask_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return torch.where((targets > 0).unsqueeze(1), logits.float(), logits.new_zeros((), dtype=torch.float32))


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, class_weights: torch.Tensor | None = None,
                         border: torch.Tensor | None = None) -> torch.Tensor:
    """Weighted mean cross-entropy over the labelled pixels.

    Parameters
    ----------
    logits
        (B, K, Y, X) raw network outputs.
    targets
        (B, Y, X) integer, 0 = unlabelled, 1..K = class.
    class_weights
        (K,) class balancing weights, or None.
    border
        (B, Y, X) border weights (see :func:`border_weight_map`) added to the class weights, or None.

    Returns 0 (with a gradient of zeros) when no pixel is labelled.
    """
    weights = pixel_weights(targets, class_weights, border)
    # Unlabelled pixels point at class 0 with weight 0; zeroing their logits first keeps even a NaN
    # or infinite output there out of the loss and out of the gradient.
    logits = _mask_logits(logits, targets)
    per_pixel = F.cross_entropy(logits, (targets - 1).clamp_min(0), reduction="none")
    total = torch.where(weights > 0, per_pixel * weights, per_pixel.new_zeros(()))
    return total.sum() / weights.sum().clamp_min(1e-6)


def masked_dice_loss(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - mean soft Dice over the classes, computed on the labelled pixels only."""
    n_classes = logits.shape[1]
    labelled = (targets > 0).unsqueeze(1)
    probs = torch.softmax(_mask_logits(logits, targets), dim=1)
    probs = torch.where(labelled, probs, probs.new_zeros(()))
    onehot = F.one_hot((targets - 1).clamp_min(0), n_classes).permute(0, 3, 1, 2).float() * labelled
    dims = (0, 2, 3)
    intersection = (probs * onehot).sum(dims)
    denominator = probs.sum(dims) + onehot.sum(dims)
    present = onehot.sum(dims) > 0
    dice = (2 * intersection + eps) / (denominator + eps)
    if not present.any():
        return logits.sum() * 0.0
    return 1.0 - dice[present].mean()


def segmentation_loss(logits: torch.Tensor, targets: torch.Tensor, kind: str = "ce",
                      class_weights: torch.Tensor | None = None, border: torch.Tensor | None = None) -> torch.Tensor:
    """``"ce"``: :func:`masked_cross_entropy`; ``"dice_ce"``: that plus :func:`masked_dice_loss`."""
    loss = masked_cross_entropy(logits, targets, class_weights, border)
    if kind == "dice_ce":
        loss = loss + masked_dice_loss(logits, targets)
    return loss
