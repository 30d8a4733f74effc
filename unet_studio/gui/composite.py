"""Display levels, histograms and colour composites of raw slices (numpy only, no Qt).

Contrast works as in Fiji and napari: each channel has display levels ``(low, high)``, either set by the
person (dragging the histogram's region) or automatic, from percentiles of the slice. A composite adds the
channels, each in its colour, after its own levels. Percentiles and histograms are computed on a subsample
of at most about 512 x 512 pixels, so that they stay fast on big images; nothing here runs on a paint.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Colours of the channels of a composite (green, magenta, cyan, yellow, red, blue, as in Fiji).
CHANNEL_COLORS = np.array(
    [[0, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.float32
)
#: Colours of a 3- or 4-channel uint8 image: red, green, blue (alpha, if any, is not shown).
RGB_COLORS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0]], dtype=np.float32)
SAMPLE_PIXELS = 262144  # 512 x 512

Levels = tuple[float, float]

__all__ = ["CHANNEL_COLORS", "RGB_COLORS", "Levels", "channel_colors", "composite_rgb", "is_rgb",
           "percentile_levels", "plane_histogram", "subsample"]


def subsample(plane: np.ndarray, pixels: int = SAMPLE_PIXELS) -> np.ndarray:
    """Every n-th row and column of ``plane`` (at most about ``pixels`` values), finite values only, float32."""
    step = max(1, int(np.ceil(np.sqrt(plane.size / pixels))))
    sample = np.asarray(plane[::step, ::step], dtype=np.float32).ravel()
    return sample[np.isfinite(sample)]


def percentile_levels(plane: np.ndarray, low: float, high: float) -> Levels:
    """Display levels from percentiles of ``plane`` (on a subsample: fast on big images; NaN ignored)."""
    sample = subsample(plane)
    if sample.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(sample, [low, high])
    if hi <= lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def plane_histogram(plane: np.ndarray, bins: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Bin centres and counts of the values of ``plane`` (a subsample), for the contrast histogram.

    Integer images get one bin per value when they have at most ``bins`` distinct values in their range,
    so that a uint8 image shows its true histogram and no empty bins between values.
    """
    sample = subsample(plane)
    if sample.size == 0:
        return np.array([0.0, 1.0]), np.zeros(2)
    lo, hi = float(sample.min()), float(sample.max())
    if hi <= lo:
        hi = lo + 1.0
    if np.issubdtype(plane.dtype, np.integer) and hi - lo + 1 <= bins:
        edges = np.arange(lo, hi + 2) - 0.5
    else:
        edges = np.linspace(lo, hi, bins + 1)
    counts, edges = np.histogram(sample, bins=edges)
    return (edges[:-1] + edges[1:]) / 2, counts.astype(np.float64)


def is_rgb(channels: int, dtype) -> bool:
    """A 3- or 4-channel uint8 image is a colour photograph: shown in red, green and blue."""
    return channels in (3, 4) and np.dtype(dtype) == np.uint8


def channel_colors(channels: int, dtype) -> np.ndarray:
    """(C, 3) float colours of the channels of an image, in [0, 1]."""
    if is_rgb(channels, dtype):
        return RGB_COLORS[:channels]
    return np.array([CHANNEL_COLORS[c % len(CHANNEL_COLORS)] for c in range(channels)], dtype=np.float32)


def composite_rgb(raw: np.ndarray, levels: Sequence[Levels], colors: np.ndarray | None = None) -> np.ndarray:
    """A (Y, X, 3) uint8 composite of a (C, Y, X) slice: each channel scaled by its levels, in its colour, added.

    Parameters
    ----------
    raw : numpy.ndarray
        The (C, Y, X) slice.
    levels : sequence of (float, float)
        Display levels of each channel: ``low`` shows black, ``high`` full colour.
    colors : numpy.ndarray, optional
        (C, 3) colours in [0, 1]; default :func:`channel_colors`.
    """
    channels = raw.shape[0]
    colors = channel_colors(channels, raw.dtype) if colors is None else colors
    out = np.zeros(raw.shape[1:] + (3,), dtype=np.float32)
    for c in range(channels):
        color = colors[c]
        if not color.any():
            continue
        lo, hi = levels[c]
        plane = np.clip((raw[c].astype(np.float32) - lo) / max(hi - lo, 1e-12), 0, 1)
        out += plane[..., None] * color
    return np.rint(np.clip(out, 0, 1) * 255).astype(np.uint8)
