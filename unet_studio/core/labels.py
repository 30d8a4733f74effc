"""Painted label volumes with stroke-grouped, memory-bounded undo and redo.

A :class:`LabelVolume` holds the labels of an image stack as one ``(S, Y, X)`` integer array
(0 = unlabelled, 1..K = class). Every edit works on the bounding box of what it touches (numpy slicing,
no per-pixel Python loops) and returns the box of the pixels it actually changed, so that a view can
refresh only that region.

Undo follows napari's label history (``_save_history``): an undo item is one stroke, a list of
``(slice, box, values)`` changes that hold the *other* state of the box. Undoing swaps the stored values
with the array's (latest change first), which turns the item into its redo item, so each change keeps
only one copy of its box. The history is bounded in bytes; the oldest items are dropped first.

Coordinates are pixel indices as floats: the centre of pixel ``(i, j)`` is ``(i, j)``.
"""

from __future__ import annotations

import logging
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage as ndi

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
"""``(y0, y1, x0, x1)``, half-open, in pixels of one slice."""

#: Long segments are painted as pieces this long (times the radius at least), so that a diagonal line
#: across a big image touches a thin band of boxes instead of one huge box.
_PIECE_LENGTH = 64.0
#: First side of the window in which a flood fill looks for its region before it grows the window.
_FILL_WINDOW = 256


@dataclass
class _Change:
    """One rectangular change: ``values`` hold the box's content before (or after, once undone)."""

    slice_index: int
    box: Box
    values: np.ndarray


@dataclass
class _HistoryItem:
    """One undo step (a stroke): its changes, in the order they were made."""

    slice_index: int
    changes: list[_Change] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(change.values.nbytes for change in self.changes)

    def box(self) -> Box | None:
        """Union of the boxes of the changes made on the item's slice."""
        boxes = [c.box for c in self.changes if c.slice_index == self.slice_index]
        return union_boxes(boxes) if boxes else None


def labels_dtype(max_value: int) -> np.dtype:
    """The smallest label dtype that holds ``max_value``: uint8 up to 255, uint16 up to 65535.

    Raises
    ------
    ValueError
        ``max_value`` is negative or above 65535 (more classes than a project can have).
    """
    for dtype in (np.uint8, np.uint16):
        if 0 <= max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"label value {max_value} outside 0..65535")


def union_boxes(boxes) -> Box:
    """Return the smallest box holding every box of ``boxes`` (an iterable of at least one box)."""
    y0s, y1s, x0s, x1s = zip(*boxes)
    return min(y0s), max(y1s), min(x0s), max(x1s)


def _tight_box(mask: np.ndarray) -> Box | None:
    """Bounding box of the True pixels of a 2-D mask, or None when there are none."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


class LabelVolume:
    """Labels of an image stack, editable with brush, line, fill and region writes, with undo and redo.

    Parameters
    ----------
    shape : tuple of int, optional
        ``(S, Y, X)`` of a new, unlabelled volume (or ``(Y, X)`` for a single image).
    data : numpy.ndarray, optional
        Existing labels, ``(S, Y, X)`` or ``(Y, X)``; used as they are (not copied) when their dtype is
        ``dtype`` and they are C-contiguous.
    dtype : numpy dtype, optional
        Integer type of the labels: by default that of ``data`` (uint8 for a new volume). Values that
        ``dtype`` cannot hold raise ValueError; they are never wrapped.
    max_undo_bytes : int, default 256 MiB
        Memory bound of undo and redo together; the oldest items are dropped beyond it.

    Attributes
    ----------
    data : numpy.ndarray
        ``(S, Y, X)`` labels; 0 = unlabelled. Read it freely; edit it only through the methods here
        (or call :meth:`clear_history` after editing it directly).
    version : int
        Increases on every change, undo and redo included (for autosave).
    """

    def __init__(self, shape=None, data=None, dtype=None, max_undo_bytes: int = 256 * 2**20) -> None:
        if (shape is None) == (data is None):
            raise ValueError("give either shape or data")
        if dtype is None:
            dtype = np.uint8 if data is None else np.asarray(data).dtype
        dtype = np.dtype(dtype)
        if not np.issubdtype(dtype, np.integer):
            raise ValueError(f"labels must have an integer dtype, got {dtype}")
        if data is None:
            data = np.zeros(shape, dtype=dtype)
        else:
            data = np.asarray(data)
            info = np.iinfo(dtype)
            if data.size and (data.min() < info.min or data.max() > info.max):
                raise ValueError(f"label values {data.min()}..{data.max()} do not fit {dtype}")
            data = np.ascontiguousarray(data, dtype=dtype)
        if data.ndim == 2:
            data = data[np.newaxis]
        if data.ndim != 3:
            raise ValueError(f"labels must be (S, Y, X) or (Y, X), got shape {data.shape}")
        self.data: np.ndarray = data
        self.version = 0
        self.max_undo_bytes = int(max_undo_bytes)
        self._undo: deque[_HistoryItem] = deque()
        self._redo: deque[_HistoryItem] = deque()
        self._stroke: _HistoryItem | None = None
        self._history_bytes = 0  # of undo and redo items (undo/redo swap values, so sizes stay)

    # ------------------------------------------------------------------ properties

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(S, Y, X)``."""
        return self.data.shape  # type: ignore[return-value]

    @property
    def can_undo(self) -> bool:
        """True when there is an item to undo (a stroke in progress counts once it changed pixels)."""
        return bool(self._undo) or bool(self._stroke and self._stroke.changes)

    @property
    def can_redo(self) -> bool:
        """True when there is an undone item to redo."""
        return bool(self._redo)

    @property
    def history_bytes(self) -> int:
        """Bytes held by undo and redo items."""
        return self._history_bytes

    def widen(self, max_value: int) -> bool:
        """Change the dtype to one that holds ``max_value`` (see :func:`labels_dtype`) if needed.

        Values and undo history are kept (numpy assigns narrower stored boxes into the wider array).
        Returns True when the dtype changed.
        """
        dtype = labels_dtype(max(int(max_value), int(np.iinfo(self.data.dtype).max)))
        if dtype == self.data.dtype or np.iinfo(dtype).max <= np.iinfo(self.data.dtype).max:
            return False
        self.data = self.data.astype(dtype)  # an open stroke goes on: its stored boxes are copies
        return True

    # ------------------------------------------------------------------ strokes

    def begin_stroke(self, slice_index: int) -> None:
        """Start grouping edits of ``slice_index`` into one undo item (ends an open stroke first)."""
        self.end_stroke()
        self._check_slice(slice_index)
        self._stroke = _HistoryItem(slice_index)

    def end_stroke(self) -> None:
        """Close the open stroke; it becomes one undo item if it changed anything."""
        stroke, self._stroke = self._stroke, None
        if stroke is not None and stroke.changes:
            self._push_undo(stroke)

    # ------------------------------------------------------------------ edits

    def paint_disk(self, slice_index: int, y: float, x: float, radius: float, value: int) -> Box | None:
        """Paint a disk of ``radius`` pixels centred on ``(y, x)`` with ``value`` (0 erases).

        Returns
        -------
        Box or None
            Tight box of the changed pixels, or None when nothing changed.
        """
        return self.paint_line(slice_index, (y, x), (y, x), radius, value)

    def paint_line(self, slice_index: int, start, end, radius: float, value: int) -> Box | None:
        """Paint the capsule of ``radius`` around the segment ``start`` -> ``end`` (no gaps on fast moves).

        A pixel is painted when its distance to the segment is at most ``max(radius, 0.5)``. Long
        segments are painted piecewise (the union of the pieces' capsules is the segment's capsule), so
        the work follows the painted area, not the segment's bounding box.

        Returns
        -------
        Box or None
            Tight box of the changed pixels, or None when nothing changed.
        """
        self._check_slice(slice_index)
        value = self._check_value(value)
        radius = max(float(radius), 0.5)
        y0, x0 = float(start[0]), float(start[1])
        y1, x1 = float(end[0]), float(end[1])
        length = float(np.hypot(y1 - y0, x1 - x0))
        n_pieces = max(1, int(np.ceil(length / max(_PIECE_LENGTH, 4.0 * radius))))
        ts = np.linspace(0.0, 1.0, n_pieces + 1)
        boxes = []
        with self._edit(slice_index) as item:
            for t0, t1 in zip(ts[:-1], ts[1:]):
                a = (y0 + t0 * (y1 - y0), x0 + t0 * (x1 - x0))
                b = (y0 + t1 * (y1 - y0), x0 + t1 * (x1 - x0))
                box = self._paint_capsule(item, slice_index, a, b, radius, value)
                if box is not None:
                    boxes.append(box)
        return union_boxes(boxes) if boxes else None

    def fill(self, slice_index: int, y: float, x: float, value: int) -> Box | None:
        """Flood-fill the 4-connected region holding the label found at ``(y, x)`` with ``value``.

        The region is searched in a window around the seed that grows (x16 in area) until the region
        does not reach the window's inner border, so filling a small cell of a big image stays cheap.

        Returns
        -------
        Box or None
            Tight box of the filled region, or None when the seed is outside the slice or already has
            ``value``.
        """
        self._check_slice(slice_index)
        value = self._check_value(value)
        plane = self.data[slice_index]
        height, width = plane.shape
        iy, ix = int(round(y)), int(round(x))
        if not (0 <= iy < height and 0 <= ix < width) or plane[iy, ix] == value:
            return None
        mask, (wy0, wx0) = self._flood_region(plane, iy, ix)
        tight = _tight_box(mask)
        assert tight is not None  # the seed itself is in the region
        ty0, ty1, tx0, tx1 = tight
        box = (ty0 + wy0, ty1 + wy0, tx0 + wx0, tx1 + wx0)
        with self._edit(slice_index) as item:
            region = plane[box[0] : box[1], box[2] : box[3]]
            item.changes.append(_Change(slice_index, box, region.copy()))
            region[mask[ty0:ty1, tx0:tx1]] = value
        return box

    def set_region(self, slice_index: int, box: Box, values) -> Box:
        """Write ``values`` (an array of the box's shape, or a scalar) into ``box`` of a slice.

        Used by "accept prediction". The box is clipped to the slice; ``values`` must have the shape of
        the box as given.

        Returns
        -------
        Box
            The (clipped) box written.
        """
        self._check_slice(slice_index)
        by0, by1, bx0, bx1 = (int(v) for v in box)
        height, width = self.shape[1:]
        values = np.broadcast_to(np.asarray(values), (max(by1 - by0, 0), max(bx1 - bx0, 0)))
        if values.size and (values.min() < 0 or values.max() > np.iinfo(self.data.dtype).max):
            raise ValueError(f"label values must be in 0..{np.iinfo(self.data.dtype).max}")
        cy0, cy1, cx0, cx1 = max(by0, 0), min(by1, height), max(bx0, 0), min(bx1, width)
        clipped = (cy0, max(cy1, cy0), cx0, max(cx1, cx0))
        if cy1 <= cy0 or cx1 <= cx0:
            return clipped
        new = values[cy0 - by0 : cy1 - by0, cx0 - bx0 : cx1 - bx0]
        region = self.data[slice_index, cy0:cy1, cx0:cx1]
        if np.array_equal(region, new):
            return clipped
        with self._edit(slice_index) as item:
            item.changes.append(_Change(slice_index, clipped, region.copy()))
            region[...] = new
        return clipped

    # ------------------------------------------------------------------ history

    def undo(self) -> tuple[int, Box] | None:
        """Undo the last stroke (ends an open stroke first).

        Returns
        -------
        (slice_index, Box) or None
            Slice and box to refresh, or None when there is nothing to undo.
        """
        self.end_stroke()
        if not self._undo:
            return None
        item = self._undo.pop()
        for change in reversed(item.changes):
            self._swap(change)
        self._redo.append(item)
        self.version += 1
        return item.slice_index, item.box()

    def redo(self) -> tuple[int, Box] | None:
        """Redo the last undone stroke; returns ``(slice_index, Box)`` or None like :meth:`undo`."""
        self.end_stroke()
        if not self._redo:
            return None
        item = self._redo.pop()
        for change in item.changes:
            self._swap(change)
        self._undo.append(item)
        self.version += 1
        return item.slice_index, item.box()

    def clear_history(self) -> None:
        """Forget every undo and redo item (for example after replacing :attr:`data`)."""
        self._stroke = None
        self._undo.clear()
        self._redo.clear()
        self._history_bytes = 0

    # ------------------------------------------------------------------ internals

    def _check_slice(self, slice_index: int) -> None:
        if not 0 <= slice_index < self.shape[0]:
            raise IndexError(f"slice {slice_index} out of range 0..{self.shape[0] - 1}")

    def _check_value(self, value) -> int:
        value = int(value)
        if 0 <= value <= 65535:
            self.widen(value)  # class 256 and beyond: uint16, never a wrapped value
        info = np.iinfo(self.data.dtype)
        if not 0 <= value <= info.max:
            raise ValueError(f"label value {value} outside 0..{info.max} of {self.data.dtype}")
        return value

    def _paint_capsule(self, item: _HistoryItem, slice_index: int, a, b, radius: float, value: int):
        """Paint one capsule (a short segment) into the slice; record its change in ``item``."""
        height, width = self.shape[1:]
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
        region = self.data[slice_index, y0:y1, x0:x1]
        changed = (dist2 <= radius * radius + 1e-9) & (region != value)
        tight = _tight_box(changed)
        if tight is None:
            return None
        ty0, ty1, tx0, tx1 = tight
        box = (ty0 + y0, ty1 + y0, tx0 + x0, tx1 + x0)
        sub = region[ty0:ty1, tx0:tx1]
        item.changes.append(_Change(slice_index, box, sub.copy()))
        sub[changed[ty0:ty1, tx0:tx1]] = value
        return box

    @staticmethod
    def _flood_region(plane: np.ndarray, iy: int, ix: int):
        """Mask of the seed's 4-connected region in the smallest sufficient window, and its origin."""
        height, width = plane.shape
        half = _FILL_WINDOW // 2
        while True:
            wy0, wy1 = max(iy - half, 0), min(iy + half, height)
            wx0, wx1 = max(ix - half, 0), min(ix + half, width)
            window = plane[wy0:wy1, wx0:wx1]
            # ndimage.label (4-connected by default) is several times faster than skimage's flood on
            # large windows; the seed's component is the region.
            components, _ = ndi.label(window == plane[iy, ix])
            mask = components == components[iy - wy0, ix - wx0]
            whole = wy0 == 0 and wx0 == 0 and wy1 == height and wx1 == width
            # The region is complete unless it touches a window edge that is not an image edge.
            leaks = (
                (wy0 > 0 and mask[0].any())
                or (wy1 < height and mask[-1].any())
                or (wx0 > 0 and mask[:, 0].any())
                or (wx1 < width and mask[:, -1].any())
            )
            if whole or not leaks:
                return mask, (wy0, wx0)
            half *= 4

    @contextmanager
    def _edit(self, slice_index: int):
        """Collect one edit's changes into the open stroke, or into an undo item of its own."""
        stroke = self._stroke
        if stroke is not None and stroke.slice_index != slice_index:
            # One undo item belongs to one slice: an edit elsewhere starts a new stroke there.
            log.debug("edit of slice %d inside a stroke of slice %d", slice_index, stroke.slice_index)
            self.begin_stroke(slice_index)
            stroke = self._stroke
        item = stroke if stroke is not None else _HistoryItem(slice_index)
        start = len(item.changes)
        try:
            yield item
        finally:
            if len(item.changes) > start:
                self.version += 1
                if stroke is None:
                    self._push_undo(item)
                else:
                    # A stroke in progress is a new edit too: what was undone before cannot be redone.
                    self._clear_redo()

    def _swap(self, change: _Change) -> None:
        y0, y1, x0, x1 = change.box
        region = self.data[change.slice_index, y0:y1, x0:x1]
        current = region.copy()
        region[...] = change.values
        change.values = current

    def _clear_redo(self) -> None:
        self._history_bytes -= sum(item.nbytes for item in self._redo)
        self._redo.clear()

    def _push_undo(self, item: _HistoryItem) -> None:
        self._clear_redo()
        self._undo.append(item)
        self._history_bytes += item.nbytes
        while self._history_bytes > self.max_undo_bytes and self._undo:
            dropped = self._undo.popleft()
            self._history_bytes -= dropped.nbytes
            log.debug("undo history over %d bytes: dropped an item of %d bytes",
                      self.max_undo_bytes, dropped.nbytes)


def fit_label_image(data: np.ndarray, shape: tuple[int, int, int], slice_index: int, n_classes: int,
                    source: str, image_name: str) -> dict[int, np.ndarray]:
    """The slices a label image brings to an image of ``shape`` ``(S, Y, X)``: ``{slice: (Y, X) values}``.

    A ``(Y, X)`` label image goes to ``slice_index``, an ``(S, Y, X)`` one to every slice. Raises
    :class:`~unet_studio.core.errors.ImageReadError` naming ``source`` when the size does not fit or a value
    is not a class (0 = unlabelled, 1..``n_classes``).
    """
    from .errors import ImageReadError

    n_slices, height, width = shape
    if data.shape == (height, width):
        planes = {slice_index: data}
    elif data.shape == (n_slices, height, width):
        planes = dict(enumerate(data))
    else:
        size = " x ".join(str(n) for n in data.shape)
        whole = f", or {n_slices} x {height} x {width} for the whole stack" if n_slices > 1 else ""
        raise ImageReadError(f"Cannot import '{source}': the label image is {size} pixels but the image "
                             f"'{image_name}' is {height} x {width}{whole}. Choose the label image made for "
                             "this image.")
    top = int(data.max()) if data.size else 0
    if top > n_classes or (data.size and int(data.min()) < 0):
        raise ImageReadError(f"Cannot import '{source}': it holds the label value {top} but the project has "
                             f"{n_classes} classes (values 1 to {n_classes}, 0 = unlabelled). Add classes in the "
                             f"Classes panel until there are {top}, or relabel the file.")
    return planes
