"""Training from a big image: only its painted regions (with a margin of context) go into the training set.

A big image is never read whole to train on it: the painted pixels' bounding boxes (found chunk by chunk
in the chunked labels, see :class:`~unet_studio.core.labels.ChunkedLabelVolume`) grow by a margin, boxes
that then overlap are merged, and each box becomes one training image, read from level 0 in the training
worker (:meth:`PaintedCrop.read`). Each crop is scaled with the percentiles of the whole image (a coarse
level), as blockwise prediction scales its blocks (:func:`~unet_studio.core.predict.percentile_scaler`), so
that a crop of a dark region is not stretched to full contrast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...core import io

__all__ = ["MARGIN", "PaintedCrop", "painted_boxes", "painted_crops"]

MARGIN = 64
"""Pixels of context around painted pixels in a training crop (a patch centred on an edge pixel sees them)."""


@dataclass(frozen=True)
class PaintedCrop:
    """Where one training image of a big image lies: read in the training worker, never on the GUI thread."""

    path: Path
    slice_index: int
    box: tuple[int, int, int, int]  # y0, y1, x0, x1 of level 0
    scaler: object  # raw (C, Y, X) -> float32, limits of the whole image

    @property
    def name(self) -> str:
        return self.path.name

    def read(self) -> np.ndarray:
        """The crop's (C, Y, X) float32 pixels, scaled like the whole image."""
        image = io.open_zarr(self.path)
        try:
            raw = image.region(0, *self.box, s=self.slice_index)
        finally:
            image.close()
        return self.scaler(raw)


def _tight(plane: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    y0, y1, x0, x1 = box
    block = plane[y0:y1, x0:x1]
    rows, cols = np.flatnonzero(block.any(axis=1)), np.flatnonzero(block.any(axis=0))
    if rows.size == 0:
        return None
    return y0 + int(rows[0]), y0 + int(rows[-1]) + 1, x0 + int(cols[0]), x0 + int(cols[-1]) + 1


def _merge(boxes: list[tuple[int, int, int, int]]) -> list[tuple[int, int, int, int]]:
    """Merge overlapping boxes until none overlap (few boxes: a simple repeated pass)."""
    boxes = list(boxes)
    merged = True
    while merged:
        merged = False
        out: list[tuple[int, int, int, int]] = []
        for box in boxes:
            for k, other in enumerate(out):
                if box[0] < other[1] and other[0] < box[1] and box[2] < other[3] and other[2] < box[3]:
                    out[k] = (min(box[0], other[0]), max(box[1], other[1]), min(box[2], other[2]),
                              max(box[3], other[3]))
                    merged = True
                    break
            else:
                out.append(box)
        boxes = out
    return sorted(boxes)


def painted_boxes(volume, slice_index: int, margin: int = MARGIN) -> list[tuple[int, int, int, int]]:
    """The boxes of painted pixels of a slice, grown by ``margin`` and merged where they overlap."""
    plane = volume.data[slice_index]
    height, width = plane.shape
    boxes = []
    for chunk in volume.painted_boxes(slice_index):
        tight = _tight(plane, chunk)
        if tight is not None:
            y0, y1, x0, x1 = tight
            boxes.append((max(0, y0 - margin), min(height, y1 + margin), max(0, x0 - margin), min(width, x1 + margin)))
    return _merge(boxes)


def painted_crops(image_index: int, state, margin: int = MARGIN) -> list[tuple]:
    """Training items ``(image index, slice, PaintedCrop, labels of the crop, None)`` of a big image's state."""
    from ...core.predict import image_sample, percentile_scaler

    source = state.stack.pyramid.image
    scaler = percentile_scaler(image_sample(source), 1.0, 99.8)
    items = []
    for slice_index in state.labels.labelled_slices():
        for box in painted_boxes(state.labels, slice_index, margin):
            y0, y1, x0, x1 = box
            labels = np.array(state.labels.data[slice_index, y0:y1, x0:x1])
            items.append((image_index, slice_index, PaintedCrop(Path(state.entry.path), slice_index, box, scaler),
                          labels, None))
    return items
