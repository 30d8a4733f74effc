"""Batch augmentation on the training device, vectorised over the batch (no per-sample loop).

Geometric: flips and 90-degree rotations, small rotations and scalings, and the paper's elastic
deformation (random displacements on a coarse 3x3 grid, standard deviation 10 px, smoothly
interpolated with bicubic upsampling), all folded into one sampling grid per sample and applied with a
single ``grid_sample`` call for the images (bilinear) and one for the labels (nearest). Intensity:
brightness, contrast, gamma and Gaussian noise, per sample.

The input crops are larger than the output patches (see :func:`crop_size`) so that rotated, scaled
and deformed patches are resampled from real (or mirrored) pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class AugmentParams:
    """Ranges of the random transformations (defaults follow the paper and common practice)."""

    flips: bool = True
    rotate_deg: float = 15.0
    scale: tuple[float, float] = (0.85, 1.2)
    elastic_sigma: float = 10.0  # pixels, standard deviation of the coarse displacements
    elastic_grid: int = 3
    brightness: float = 0.1  # additive, in units of the normalised image (about 0..1)
    contrast: tuple[float, float] = (0.75, 1.33)
    gamma: tuple[float, float] = (0.7, 1.5)
    noise: float = 0.03  # maximum standard deviation of additive Gaussian noise
    p_intensity: float = 0.8


def crop_size(patch: int, params: AugmentParams | None) -> int:
    """Side of the region to crop so that any augmented ``patch`` stays inside it."""
    if params is None:
        return patch
    angle = math.radians(params.rotate_deg)
    reach = patch * max(params.scale) * (abs(math.cos(angle)) + abs(math.sin(angle)))
    # Elastic displacements stay well inside 3 standard deviations (clamped in random_grid).
    side = int(math.ceil(reach + 6 * params.elastic_sigma)) + 2
    return side + (side % 2)


def random_grid(batch: int, patch: int, crop: int, params: AugmentParams, generator: torch.Generator,
                device: torch.device) -> torch.Tensor:
    """Sampling grid (B, P, P, 2) in ``grid_sample`` coordinates of a (crop x crop) input."""
    # All draws come from ``generator``, which lives on ``device``: nothing crosses host <-> device.
    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(shape, generator=generator, device=device)

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * rand(batch)

    angle = torch.deg2rad(uniform(-params.rotate_deg, params.rotate_deg))
    if params.flips:
        angle = angle + (math.pi / 2) * torch.floor(4 * rand(batch)).clamp(max=3)
        flip = torch.where(rand(batch) < 0.5, -1.0, 1.0)
    else:
        flip = torch.ones(batch, device=device)
    # Log-uniform scale: zooming in and out equally likely.
    lo, hi = params.scale
    scale = torch.exp(uniform(math.log(lo), math.log(hi)))
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    ratio = patch / crop  # output patch spans this fraction of the crop
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos * flip, -sin, zero], 1),
                         torch.stack([sin * flip, cos, zero], 1)], 1) * ratio
    grid = F.affine_grid(theta, [batch, 1, patch, patch], align_corners=False)
    if params.elastic_sigma > 0:
        n = params.elastic_grid
        coarse = torch.randn(batch, 2, n, n, generator=generator, device=device) * params.elastic_sigma
        coarse = coarse.clamp(-3 * params.elastic_sigma, 3 * params.elastic_sigma)
        # Bicubic upsampling of the coarse grid as two small matrix products (much cheaper than
        # F.interpolate on the CPU); pixels of the crop -> normalised grid units.
        weights = _cubic_weights(n, patch, device)
        dense = torch.einsum("yi,bcij,xj->byxc", weights, coarse, weights)
        grid = grid + dense * (2.0 / crop)
    return grid


_CUBIC_CACHE: dict[tuple[int, int, str], torch.Tensor] = {}


def _cubic_weights(n: int, size: int, device: torch.device) -> torch.Tensor:
    """(size, n) matrix W with ``W @ v`` = bicubic upsampling (align_corners=True) of a length-n vector."""
    key = (n, size, str(device))
    if key not in _CUBIC_CACHE:
        # Upsampling each unit vector along one axis gives one column of W.
        eye = torch.eye(n, dtype=torch.float32)[:, None, :, None].expand(n, 1, n, 4).contiguous()
        columns = F.interpolate(eye, size=(size, 4), mode="bicubic", align_corners=True)[:, 0, :, 0]
        _CUBIC_CACHE[key] = columns.t().contiguous().to(device)
    return _CUBIC_CACHE[key]


def warp(images: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None,
         grid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Resample images (bilinear, mirrored borders), labels (nearest) and weights with one grid.

    ``images`` (B, C, S, S) float, ``labels`` (B, S, S) integer, ``weights`` (B, S, S) float or None;
    returns (B, C, P, P), (B, P, P) int64 and (B, P, P).
    """
    channels = images.shape[1]
    stacked = images if weights is None else torch.cat([images, weights[:, None].to(images.dtype)], 1)
    warped = F.grid_sample(stacked, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    # Out-of-crop positions of the labels become 0 = unlabelled (never happens with crop_size()).
    warped_labels = F.grid_sample(labels[:, None].to(grid.dtype), grid, mode="nearest",
                                  padding_mode="zeros", align_corners=False)
    out_weights = None if weights is None else warped[:, channels]
    return warped[:, :channels], warped_labels[:, 0].round().long(), out_weights


def intensity(images: torch.Tensor, params: AugmentParams, generator: torch.Generator) -> torch.Tensor:
    """Random brightness, contrast, gamma and noise per sample (images roughly in 0..1)."""
    batch = images.shape[0]
    shape = (batch, 1, 1, 1)
    device = images.device

    def uniform(low: float, high: float) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=generator, device=device)

    active = (torch.rand(shape, generator=generator, device=device) < params.p_intensity).to(images.dtype)
    lo = images.amin(dim=(2, 3), keepdim=True)
    hi = images.amax(dim=(2, 3), keepdim=True)
    span = (hi - lo).clamp_min(1e-6)
    # Gamma on the patch rescaled to 0..1, then back to its range.
    gamma = torch.exp(uniform(math.log(params.gamma[0]), math.log(params.gamma[1])))
    out = ((images - lo) / span).clamp(0, 1).pow(gamma) * span + lo
    mean = out.mean(dim=(2, 3), keepdim=True)
    contrast = torch.exp(uniform(math.log(params.contrast[0]), math.log(params.contrast[1])))
    out = (out - mean) * contrast + mean + uniform(-params.brightness, params.brightness)
    sd = uniform(0.0, params.noise)
    noise = torch.randn(images.shape, generator=generator, device=device, dtype=images.dtype)
    out = out + noise * sd
    return active * out + (1 - active) * images


def augment_batch(images: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None, patch: int,
                  params: AugmentParams | None, generator: torch.Generator):
    """Augment a batch of crops into patches of side ``patch``; without params, centre-crop only."""
    crop = images.shape[-1]
    if params is None:
        top = (crop - patch) // 2
        window = (..., slice(top, top + patch), slice(top, top + patch))
        return images[window], labels[window], None if weights is None else weights[window]
    grid = random_grid(images.shape[0], patch, crop, params, generator, images.device)
    images, labels, weights = warp(images, labels, weights, grid)
    if params.p_intensity > 0:
        images = intensity(images, params, generator)
    return images, labels, weights
