"""Pixel values: percentile normalisation, and warnings about values that make a result doubtful."""

from __future__ import annotations

import numpy as np

_PERCENTILE_SAMPLES = 1 << 20  # percentiles of a big channel come from about this many pixels
_NORMALIZED_LIMIT = 1e6  # normalised values beyond this tell a network nothing and risk overflow in it


def pixel_warning(data: np.ndarray) -> str:
    """A sentence about pixel values that make a result doubtful (NaN or infinite values, a constant image), or ``""``.

    The tools go on with such an image (NaN counts as the darkest value, +Inf as the brightest; a constant
    image normalises to zeros), but the person should know.
    """
    data = np.asarray(data)
    if data.size == 0:
        return ""
    problems = []
    finite = None
    if data.dtype.kind == "f":
        finite_mask = np.isfinite(data)
        bad = int(data.size - np.count_nonzero(finite_mask))
        if bad:
            problems.append(f"{bad} pixel{'s' * (bad != 1)} {'are' if bad != 1 else 'is'} NaN or infinite "
                            "(read as the darkest value, +Inf as the brightest); replace them, e.g. in Fiji "
                            "with Process > Math > Remove NaNs, if that is wrong")
            finite = data[finite_mask]
    values = data if finite is None else finite
    if values.size == 0:
        problems.append("no pixel has a finite value: there is nothing to see or segment")
    elif values.min() == values.max():
        problems.append(f"the image is constant (every pixel is {values.flat[0]:g}): there is nothing to "
                        "segment; check that this is the right file and that it was exported correctly")
    return "; ".join(problems)


def normalize_percentile(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Scale each channel so that its ``low`` percentile maps to 0 and its ``high`` percentile to 1.

    Parameters
    ----------
    image : numpy.ndarray
        ``(C, Y, X)`` (or ``(Y, X)``, treated as one channel) of any real dtype.
    low, high : float
        Percentiles, ``0 <= low < high <= 100``.

    Returns
    -------
    numpy.ndarray
        float32 of the same shape, not clipped (except beyond +-1e6 for float64 input or values near
        float32's limits, which are computed in float64). Percentiles come from the finite pixels only (a
        subsample of about a million pixels on big channels); NaN becomes 0, +Inf 1 and -Inf 0. A constant
        channel (or one with no finite pixel) becomes zeros.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"expected a (C, Y, X) or (Y, X) image, got shape {image.shape}")
    source = image[np.newaxis] if image.ndim == 2 else image
    out = np.empty(source.shape, np.float32)
    for values, channel in zip(source, out):
        flat = values.reshape(-1)
        sample = np.asarray(flat[:: max(1, flat.size // _PERCENTILE_SAMPLES)], dtype=np.float64)
        finite_mask = np.isfinite(sample)
        sample = sample if finite_mask.all() else sample[finite_mask]
        if sample.size == 0:
            channel[...] = 0.0
            continue
        lo, hi = (float(v) for v in np.percentile(sample, (low, high)))
        scale = max(abs(lo), abs(hi)) or 1.0  # hi - lo itself overflows for float64 values near +-1e308
        span = hi - lo
        if not hi / scale - lo / scale > 1e-20:
            channel[...] = 0.0
            continue
        if values.dtype.itemsize <= 4 and span > 1e-30 and max(abs(lo), abs(hi)) < 1e30:
            channel[...] = values  # float32 arithmetic is exact enough for these values, and half the memory
            if not np.isfinite(channel).all():
                np.nan_to_num(channel, copy=False, nan=lo, posinf=hi, neginf=lo)
            channel -= np.float32(lo)
            channel *= np.float32(1.0 / span)
        else:
            # float64 images, and values near float32's limits (2.5e-42, 3e38): in float32 they become 0 or
            # inf on the way. Outliers far beyond the percentiles are clipped where float32 would overflow.
            scaled = np.nan_to_num(np.asarray(values, np.float64), nan=lo, posinf=hi, neginf=lo) / scale
            scaled = (scaled - lo / scale) / (hi / scale - lo / scale)
            np.clip(scaled, -_NORMALIZED_LIMIT, _NORMALIZED_LIMIT, out=scaled)
            channel[...] = scaled
    return out[0] if image.ndim == 2 else out
