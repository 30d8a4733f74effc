"""Learning from the pixels that sparse labels leave unlabelled.

Scribbles label a few per cent of the pixels; the rest of the person's images is the largest resource a
training run has. Two ways to use it, chosen by ``TrainConfig.unlabelled_loss`` (both start after the share
``unlabelled_from`` of the run, once the network predicts something worth following):

- ``"pseudo"`` (self-training): where the network is confident (top softmax probability at least
  ``unlabelled_threshold``) on an unlabelled pixel, its own prediction becomes that pixel's target;
  no extra computation.
- ``"consistency"`` (FixMatch-style): the same patches are perturbed a second time in intensity (contrast,
  gamma, brightness, noise on top of the first view's) and run through the network again; confident
  predictions of the first view are the targets of the second on unlabelled pixels, and the labelled
  pixels count in both views. Both views go through one forward pass (about 1.5 times the time of a step).

A third term, independent of the first two (``TrainConfig.edge_smoothness``, 0 = off), says where a
structure ends, which scribbles never do (they lie in the middle of structures): neighbouring pixels of
similar intensity should get the same class (:func:`edge_smoothness_loss`, a local "gated CRF" loss after
Tang et al., ECCV 2018, and Obukhov et al., 2019), so that the class boundaries move onto intensity edges.

The targets carry no gradient: the network is pulled towards its confident predictions under
perturbation, not pushed to agree with itself at any price. The fast preset uses ``"pseudo"`` at weight 1
from a tenth of the run: on ISBI validation slices, scribble-trained membrane F1 0.772 against 0.763 without,
consistency no better than pseudo-labels for more time per step. It also uses edge smoothness (weight 3,
the contrast scale from the batch; ``train --no-snap-to-edges`` and "Snap to edges" in the application turn it
off): on the same slices 0.802 against 0.772, and on scribbled fluorescence nuclei 0.896 against 0.779 on one
validation set and 0.832 against 0.846 on another (``docs/MEASUREMENTS.md``).
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from . import augment as aug


def confident_targets(logits: torch.Tensor, labels: torch.Tensor, threshold: float) -> tuple[torch.Tensor,
                                                                                             torch.Tensor]:
    """(targets, mask): the argmax class of ``logits`` (B, K, Y, X) and where it counts: unlabelled pixels
    (``labels == 0``) whose top probability is at least ``threshold``."""
    with torch.no_grad():
        probabilities = torch.softmax(logits.detach().float(), dim=1)
        confidence, targets = probabilities.max(dim=1)
        mask = (labels == 0) & (confidence >= threshold) & torch.isfinite(confidence)
    return targets, mask


def pseudo_label_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of ``logits`` against ``targets`` over ``mask`` (0, with a gradient, when empty)."""
    if not bool(mask.any()):
        return logits.float().sum() * 0.0
    safe = torch.where(mask.unsqueeze(1), logits.float(), logits.new_zeros((), dtype=torch.float32))
    per_pixel = F.cross_entropy(safe, targets, reduction="none")
    return per_pixel[mask].mean()


def second_view(images: torch.Tensor, params: aug.AugmentParams | None, generator: torch.Generator,
                channels_last: bool) -> torch.Tensor:
    """The same patches perturbed again in intensity (always: the second view must differ from the first)."""
    base = params if params is not None else aug.AugmentParams()
    view = aug.intensity(images.float(), replace(base, p_intensity=1.0), generator).to(images.dtype)
    return view.contiguous(memory_format=torch.channels_last) if channels_last else view.contiguous()


def _offsets(radius: int) -> list[tuple[int, int]]:
    """One of each pair of opposite offsets within ``radius`` (a half-plane: each pair of pixels once)."""
    return [(dy, dx) for dy in range(0, radius + 1) for dx in range(-radius, radius + 1)
            if (dy > 0 or dx > 0) and dy * dy + dx * dx <= radius * radius]


def _contrast_scale(images: torch.Tensor) -> torch.Tensor:
    """:func:`contrast_sigma` as a 0-d tensor on the images' device (no wait for the device in a step)."""
    images = images.detach().float()
    horizontal = (images[..., :, 1:] - images[..., :, :-1]).square().sum(dim=1).mean()
    vertical = (images[..., 1:, :] - images[..., :-1, :]).square().sum(dim=1).mean()
    value = torch.sqrt(((horizontal + vertical) / 2).double())  # 0-d: the weights stay in float32
    return torch.nan_to_num(value, nan=1e-3, posinf=1e-3).clamp_min(1e-3)


def contrast_sigma(images: torch.Tensor) -> float:
    """The root mean square intensity difference between horizontal and vertical neighbours of ``images``
    (B, C, Y, X), channels summed: GrabCut's choice of the contrast scale (Rother et al., 2004), at least
    1e-3. About 0.1 on ISBI's EM slices (normalised), 0.03 on dsb2018's fluorescence nuclei."""
    return float(_contrast_scale(images))


def edge_smoothness_loss(logits: torch.Tensor, images: torch.Tensor, sigma: float = 0.0,
                         radius: int = 2) -> torch.Tensor:
    """Mean over neighbouring pixel pairs (within ``radius``) of ``w * (1 - p_i . p_j)``.

    ``p`` is the softmax of ``logits`` (B, K, Y, X); ``w = exp(-|I_i - I_j|^2 / (2 sigma^2))`` from the
    (normalised) ``images`` (B, C, Y', X'), centre-cropped to the logits' size (an unpadded network's output
    is smaller than its input). A pair of pixels that look alike and are given different classes costs up
    to 1; across an intensity edge (``|I_i - I_j|`` a few ``sigma``) the cost vanishes, so the loss moves
    class boundaries onto edges. ``sigma`` 0: :func:`contrast_sigma` of the cropped images, so that the
    soft edges of fluorescence count as edges as much as the sharp ones of EM. The weights carry no gradient.
    """
    probabilities = torch.softmax(logits.float(), dim=1)
    height, width = probabilities.shape[-2:]
    top = (images.shape[-2] - height) // 2
    left = (images.shape[-1] - width) // 2
    image = images[..., top:top + height, left:left + width].detach().float()
    scale = _contrast_scale(image) if sigma <= 0 else sigma
    total = probabilities.new_zeros(())
    pairs = 0
    for dy, dx in _offsets(radius):
        ys, yd = slice(0, height - dy), slice(dy, height)
        xs, xd = (slice(0, width - dx), slice(dx, width)) if dx >= 0 else (slice(-dx, width), slice(0, width + dx))
        difference = (image[..., ys, xs] - image[..., yd, xd]).square().sum(dim=1)
        weight = torch.exp(difference / (-2.0 * scale * scale))
        agreement = (probabilities[..., ys, xs] * probabilities[..., yd, xd]).sum(dim=1)
        total = total + (weight * (1.0 - agreement)).sum()
        pairs += weight.numel()
    return total / max(pairs, 1)
