"""Drawing primitives on one 2-D label slice: brush capsules along a segment, flood fill, tight boxes.

Each primitive works on the bounding box of what it touches (numpy slicing, no per-pixel Python loops)
and returns the box of the pixels it actually changed with their old values, so that the caller can
record an undo item and a view can refresh only that region.

Coordinates are pixel indices as floats: the centre of pixel ``(i, j)`` is ``(i, j)``.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

Box = tuple[int, int, int, int]
"""``(y0, y1, x0, x1)``, half-open, in pixels of one slice."""

#: Long segments are painted as pieces this long (times the radius at least), so that a diagonal line
#: across a big image touches a thin band of boxes instead of one huge box.
PIECE_LENGTH = 64.0
#: First side of the window in which a flood fill looks for its region before it grows the window.
FILL_WINDOW = 256
#: Gaussian smoothing (pixels) of the image before an intensity-bounded fill compares pixels to the seed.
FILL_SIGMA = 1.0
#: Holes of an intensity-bounded fill up to this many pixels are filled too (the texture of a nucleus);
#: bigger ones are other objects (the nuclei inside a fill of the background) and stay out.
FILL_MAX_HOLE = 25


def union_boxes(boxes) -> Box:
    """Return the smallest box holding every box of ``boxes`` (an iterable of at least one box)."""
    y0s, y1s, x0s, x1s = zip(*boxes)
    return min(y0s), max(y1s), min(x0s), max(x1s)


def tight_box(mask: np.ndarray) -> Box | None:
    """Bounding box of the True pixels of a 2-D mask, or None when there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def segment_pieces(start, end, radius: float) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """Split the segment ``start`` -> ``end`` into pieces of at most ``max(PIECE_LENGTH, 4 * radius)``.

    The union of the pieces' capsules is the segment's capsule, so painting piecewise paints the same
    pixels while the work follows the painted area, not the segment's bounding box.
    """
    y0, x0 = float(start[0]), float(start[1])
    y1, x1 = float(end[0]), float(end[1])
    length = float(np.hypot(y1 - y0, x1 - x0))
    n_pieces = max(1, int(np.ceil(length / max(PIECE_LENGTH, 4.0 * radius))))
    ts = np.linspace(0.0, 1.0, n_pieces + 1)
    return [((y0 + t0 * (y1 - y0), x0 + t0 * (x1 - x0)), (y0 + t1 * (y1 - y0), x0 + t1 * (x1 - x0)))
            for t0, t1 in zip(ts[:-1], ts[1:])]


def paint_capsule(plane: np.ndarray, a, b, radius: float, value: int) -> tuple[Box, np.ndarray] | None:
    """Paint the pixels of ``plane`` within ``radius`` of the segment ``a`` -> ``b`` with ``value``.

    Returns
    -------
    (Box, numpy.ndarray) or None
        Tight box of the changed pixels and a copy of that box's values before painting, or None when
        nothing changed.
    """
    height, width = plane.shape
    ay, ax = a
    by, bx = b
    y0 = max(int(np.floor(min(ay, by) - radius)), 0)
    y1 = min(int(np.ceil(max(ay, by) + radius)) + 1, height)
    x0 = max(int(np.floor(min(ax, bx) - radius)), 0)
    x1 = min(int(np.ceil(max(ax, bx) + radius)) + 1, width)
    if y1 <= y0 or x1 <= x0:
        return None
    # Distance of each pixel centre of the box to the segment, on broadcast row/column vectors.
    py = np.arange(y0, y1, dtype=np.float64)[:, None] - ay
    px = np.arange(x0, x1, dtype=np.float64)[None, :] - ax
    dy, dx = by - ay, bx - ax
    seg2 = dy * dy + dx * dx
    if seg2 > 0.0:
        t = np.clip((py * dy + px * dx) / seg2, 0.0, 1.0)
        dist2 = (py - t * dy) ** 2 + (px - t * dx) ** 2
    else:
        dist2 = py * py + px * px
    region = plane[y0:y1, x0:x1]
    changed = (dist2 <= radius * radius + 1e-9) & (region != value)
    tight = tight_box(changed)
    if tight is None:
        return None
    ty0, ty1, tx0, tx1 = tight
    sub = region[ty0:ty1, tx0:tx1]
    old = sub.copy()
    sub[changed[ty0:ty1, tx0:tx1]] = value
    return (ty0 + y0, ty1 + y0, tx0 + x0, tx1 + x0), old


def fill_small_holes(mask: np.ndarray, max_hole: int = FILL_MAX_HOLE) -> np.ndarray:
    """``mask`` with its holes of at most ``max_hole`` pixels filled (texture specks, not enclosed objects)."""
    holes = ndi.binary_fill_holes(mask) & ~mask
    if not holes.any():
        return mask
    components, count = ndi.label(holes)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    small = sizes <= max_hole
    small[0] = False
    return mask | small[components]


def smoothed(intensity: np.ndarray, sigma: float) -> np.ndarray:
    """``(Y, X)`` or ``(C, Y, X)`` pixels as float32, each channel smoothed by a Gaussian of ``sigma`` pixels."""
    values = np.asarray(intensity, dtype=np.float32)
    if sigma <= 0:
        return values
    sigmas = (0.0,) * (values.ndim - 2) + (float(sigma), float(sigma))
    return ndi.gaussian_filter(values, sigmas, mode="nearest")


def similar_pixels(intensity: np.ndarray, seed, tolerance) -> np.ndarray:
    """Pixels of ``intensity`` within ``tolerance`` of the ``seed`` value, in every channel.

    Parameters
    ----------
    intensity : numpy.ndarray
        ``(Y, X)`` or ``(C, Y, X)`` pixel values (a window of the image).
    seed : numpy.ndarray
        The seed pixel's value, ``()`` or ``(C,)``.
    tolerance : float or sequence of float
        Largest absolute difference to the seed, one for every channel (in the image's units).

    Returns
    -------
    numpy.ndarray
        ``(Y, X)`` boolean mask.
    """
    values = np.asarray(intensity, dtype=np.float32)
    if values.ndim == 2:
        values = values[np.newaxis]
    seed = np.asarray(seed, dtype=np.float32).reshape(-1, 1, 1)
    tolerance = np.broadcast_to(np.asarray(tolerance, dtype=np.float32), (values.shape[0],)).reshape(-1, 1, 1)
    return (np.abs(values - seed) <= tolerance).all(axis=0)


def flood_region(plane: np.ndarray, iy: int, ix: int, intensity: np.ndarray | None = None,
                 tolerance=None, sigma: float = FILL_SIGMA) -> tuple[Box, np.ndarray]:
    """The 4-connected region around ``(iy, ix)`` holding its label (and, optionally, a similar intensity).

    Without ``intensity`` the region is every connected pixel of the seed's label, so it stops at other
    labels. With ``intensity`` (``(Y, X)`` or ``(C, Y, X)``) and ``tolerance`` (one value, or one per
    channel) it also stops where the image differs from the seed pixel by more than ``tolerance``: the
    magic wand of paint programs and Fiji, bounded by the labels painted so far. The image is smoothed
    first (Gaussian, ``sigma`` pixels) and small holes inside the region are filled, because the texture of a
    nucleus or a cell would otherwise leave a sparse region of speckles.

    The region is searched in a window around the seed that grows (x16 in area) until the region does
    not reach the window's inner border, so filling a small cell of a big image stays cheap.

    Returns
    -------
    (Box, numpy.ndarray)
        Tight box of the region in ``plane`` and the region's boolean mask within that box.
    """
    height, width = plane.shape
    half = FILL_WINDOW // 2
    while True:
        wy0, wy1 = max(iy - half, 0), min(iy + half, height)
        wx0, wx1 = max(ix - half, 0), min(ix + half, width)
        same_label = plane[wy0:wy1, wx0:wx1] == plane[iy, ix]
        candidates = same_label
        if intensity is not None:
            raw = intensity[..., wy0:wy1, wx0:wx1]
            window = smoothed(raw, sigma)
            candidates = same_label & similar_pixels(window, window[..., iy - wy0, ix - wx0], tolerance)
            candidates[iy - wy0, ix - wx0] = True  # a NaN seed is still its own region
        # ndimage.label (4-connected by default) on the candidate mask is several times faster than
        # skimage.segmentation.flood on large windows, and it takes labels and several channels at once.
        components, _ = ndi.label(candidates)
        mask = components == components[iy - wy0, ix - wx0]
        if intensity is not None:
            # Smoothing blurs the region's edge by about a pixel: take back the edge pixels whose own value
            # is similar, then the holes that texture left inside.
            edge = ndi.binary_dilation(mask, np.ones((3, 3), bool)) & ~mask
            mask |= edge & same_label & similar_pixels(raw, window[..., iy - wy0, ix - wx0], tolerance)
            mask = fill_small_holes(mask) & same_label
        whole = wy0 == 0 and wx0 == 0 and wy1 == height and wx1 == width
        # The region is complete unless it touches a window edge that is not an image edge.
        leaks = (
            (wy0 > 0 and mask[0].any())
            or (wy1 < height and mask[-1].any())
            or (wx0 > 0 and mask[:, 0].any())
            or (wx1 < width and mask[:, -1].any())
        )
        if whole or not leaks:
            break
        half *= 4
    tight = tight_box(mask)
    assert tight is not None  # the seed itself is in the region
    ty0, ty1, tx0, tx1 = tight
    return (ty0 + wy0, ty1 + wy0, tx0 + wx0, tx1 + wx0), mask[ty0:ty1, tx0:tx1]
