"""The labels of an image stack as one array, edited by brush, line, fill and region writes, with undo.

A :class:`LabelVolume` holds the labels of an image stack as one ``(S, Y, X)`` integer array
(0 = unlabelled, 1..K = class). Every edit works on the bounding box of what it touches (see
:mod:`.drawing`) and returns the box of the pixels it actually changed, so that a view can refresh only
that region. Edits are grouped into strokes for undo and redo (see :mod:`.history`).

Coordinates are pixel indices as floats: the centre of pixel ``(i, j)`` is ``(i, j)``.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np

from .drawing import Box, flood_region, paint_capsule, segment_pieces, union_boxes
from .history import Change, HistoryItem, LabelHistory
from .provenance import clear_edited, mark_accepted
from .values import labels_dtype


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
    accepted : numpy.ndarray or None
        ``(S, Y, X)`` booleans: pixels written by an accepted prediction (``set_region(...,
        accepted=True)``) that no edit has touched since; None until a prediction is accepted. Undo and
        redo restore them with the labels (see :mod:`.provenance`).
    instances : numpy.ndarray or None
        ``(S, Y, X)`` object numbers of imported instance images (0 where a slice has none), kept for
        training the object output (see :mod:`.instances`); None until instances are imported. Written only
        by :meth:`set_slices`; undo and redo restore them with the labels.
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
        self.history = LabelHistory(max_undo_bytes)
        self.accepted: np.ndarray | None = None
        self.instances: np.ndarray | None = None

    # ------------------------------------------------------------------ properties

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(S, Y, X)``."""
        return self.data.shape  # type: ignore[return-value]

    @property
    def max_undo_bytes(self) -> int:
        """Memory bound of undo and redo together."""
        return self.history.max_bytes

    @max_undo_bytes.setter
    def max_undo_bytes(self, value: int) -> None:
        self.history.max_bytes = int(value)

    @property
    def can_undo(self) -> bool:
        """True when there is an item to undo (a stroke in progress counts once it changed pixels)."""
        return self.history.can_undo

    @property
    def can_redo(self) -> bool:
        """True when there is an undone item to redo."""
        return self.history.can_redo

    @property
    def history_bytes(self) -> int:
        """Bytes held by undo and redo items."""
        return self.history.nbytes

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
        self.history.end_stroke()
        self._check_slice(slice_index)
        self.history.begin_stroke(slice_index)

    def end_stroke(self) -> None:
        """Close the open stroke; it becomes one undo item if it changed anything."""
        self.history.end_stroke()

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
        plane = self.data[slice_index]
        boxes = []
        with self._edit(slice_index) as item:
            for a, b in segment_pieces(start, end, radius):
                painted = paint_capsule(plane, a, b, radius, value)
                if painted is not None:
                    box, old = painted
                    item.changes.append(Change(slice_index, box, old))
                    boxes.append(box)
                if self.accepted is not None:
                    # Painting over an accepted pixel with its own class makes it the person's too.
                    cleared = paint_capsule(self.accepted[slice_index], a, b, radius, False)
                    if cleared is not None:
                        item.changes.append(Change(slice_index, *cleared, layer="accepted"))
        return union_boxes(boxes) if boxes else None

    def fill(self, slice_index: int, y: float, x: float, value: int, intensity: np.ndarray | None = None,
             tolerance=None) -> Box | None:
        """Flood-fill the 4-connected region around ``(y, x)`` (see :meth:`fill_region`) with ``value``.

        Returns
        -------
        Box or None
            Tight box of the filled region, or None when the seed is outside the slice or already has
            ``value``.
        """
        region = self.fill_region(slice_index, y, x, value, intensity, tolerance)
        if region is None:
            return None
        return self.fill_mask(slice_index, *region, value)

    def fill_region(self, slice_index: int, y: float, x: float, value: int, intensity: np.ndarray | None = None,
                    tolerance=None) -> tuple[Box, np.ndarray] | None:
        """The region a fill at ``(y, x)`` would change, without changing it (to check its size first).

        The region is the 4-connected region holding the label found at ``(y, x)``; with ``intensity``
        (the slice's pixels, ``(Y, X)`` or ``(C, Y, X)``) and ``tolerance`` (one value or one per channel)
        only its pixels within ``tolerance`` of the seed pixel's intensity (see
        :func:`~.drawing.flood_region`).

        Returns
        -------
        (Box, numpy.ndarray) or None
            Tight box of the region and its mask in that box, or None when the seed is outside the slice or
            already has ``value``.
        """
        self._check_slice(slice_index)
        plane = self.data[slice_index]
        height, width = plane.shape
        iy, ix = int(round(y)), int(round(x))
        if not (0 <= iy < height and 0 <= ix < width) or plane[iy, ix] == int(value):
            return None
        return flood_region(plane, iy, ix, intensity, tolerance)

    def fill_mask(self, slice_index: int, box: Box, mask: np.ndarray, value: int) -> Box:
        """Set the pixels of ``mask`` (a boolean array of ``box``'s shape) to ``value``; returns ``box``."""
        self._check_slice(slice_index)
        value = self._check_value(value)
        plane = self.data[slice_index]
        with self._edit(slice_index) as item:
            region = plane[box[0] : box[1], box[2] : box[3]]
            item.changes.append(Change(slice_index, box, region.copy()))
            region[mask] = value
        return box

    def set_region(self, slice_index: int, box: Box, values, accepted: bool = False) -> Box:
        """Write ``values`` (an array of the box's shape, or a scalar) into ``box`` of a slice.

        Used by "accept prediction" (``accepted=True``: the pixels it changes are flagged in
        :attr:`accepted`). The box is clipped to the slice; ``values`` must have the shape of the box as
        given.

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
        with self._edit(slice_index, accepted) as item:
            item.changes.append(Change(slice_index, clipped, region.copy()))
            region[...] = new
        return clipped

    def set_slices(self, planes: dict[int, np.ndarray],
                   instances: dict[int, np.ndarray] | None = None) -> dict[int, Box]:
        """Replace whole slices (``{slice: (Y, X) values}``) as one undo item; returns the changed boxes.

        Used by label import: a stack imported at once is undone at once. ``instances`` (``{slice: (Y, X)
        object numbers}``, see :func:`~.instances.instance_planes`) are kept in :attr:`instances` for those
        slices; a replaced slice without them loses the instances it had (they described other labels).
        """
        self.history.end_stroke()
        instances = instances or {}
        if set(instances) - set(planes):
            raise ValueError(f"instances of slices {sorted(set(instances) - set(planes))} without their labels")
        for slice_index in planes:
            self._check_slice(slice_index)
        top = max((int(p.max()) for p in planes.values() if p.size), default=0)
        self._check_value(top)
        whole = (0, self.shape[1], 0, self.shape[2])
        new_objects = self._instance_layer(planes, instances)
        changed = {}
        for slice_index, values in sorted(planes.items()):
            if values.shape != self.shape[1:]:
                raise ValueError(f"slice {slice_index} is {self.shape[1:]}, the new values {values.shape}")
            if not np.array_equal(self.data[slice_index], values) or slice_index in new_objects:
                changed[slice_index] = whole
        if not changed:
            return changed
        # One item for every slice: its own slice (what undo shows) is the first slice that changed.
        with self._edit(min(changed)) as item:
            for slice_index, box in changed.items():
                region = self.data[slice_index]
                if not np.array_equal(region, planes[slice_index]):
                    item.changes.append(Change(slice_index, box, region.copy()))
                    region[...] = planes[slice_index]
                if slice_index in new_objects:
                    item.changes.append(Change(slice_index, box, self.instances[slice_index].copy(), "instances"))
                    self.instances[slice_index] = new_objects[slice_index]
        return changed

    def _instance_layer(self, planes: dict[int, np.ndarray], instances: dict[int, np.ndarray]) -> dict:
        """The instance planes :meth:`set_slices` changes (``{slice: new plane}``), the layer made wide enough."""
        for slice_index, plane in instances.items():
            if plane.shape != self.shape[1:]:
                raise ValueError(f"slice {slice_index} is {self.shape[1:]}, its instances {plane.shape}")
        if not instances and self.instances is None:
            return {}
        top = max((int(p.max()) for p in instances.values() if p.size), default=0)
        dtype = np.uint16 if top <= np.iinfo(np.uint16).max else np.uint32
        if self.instances is None:
            self.instances = np.zeros(self.shape, dtype)
        elif np.iinfo(dtype).max > np.iinfo(self.instances.dtype).max:
            self.instances = self.instances.astype(dtype)  # stored undo boxes are copies: they still fit
        out = {}
        for slice_index in sorted({*planes, *instances}):
            new = instances.get(slice_index)
            new = np.zeros(self.shape[1:], self.instances.dtype) if new is None else new
            if not np.array_equal(self.instances[slice_index], new):
                out[slice_index] = new
        return out

    def instances_slice(self, slice_index: int) -> np.ndarray | None:
        """A copy of the imported instances of a slice, or None when it has none."""
        self._check_slice(slice_index)
        if self.instances is None or not self.instances[slice_index].any():
            return None
        return self.instances[slice_index].copy()

    # ------------------------------------------------------------------ history

    def undo(self) -> tuple[int, Box] | None:
        """Undo the last stroke (ends an open stroke first).

        Returns
        -------
        (slice_index, Box) or None
            Slice and box to refresh, or None when there is nothing to undo.
        """
        return self._applied(self.history.undo(self.data, self.accepted, self.instances))

    def redo(self) -> tuple[int, Box] | None:
        """Redo the last undone stroke; returns ``(slice_index, Box)`` or None like :meth:`undo`."""
        return self._applied(self.history.redo(self.data, self.accepted, self.instances))

    def clear_history(self) -> None:
        """Forget every undo and redo item (for example after replacing :attr:`data`)."""
        self.history.clear()

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

    def accepted_slice(self, slice_index: int) -> np.ndarray | None:
        """A copy of the accepted-prediction flags of a slice, or None when none of its pixels is flagged."""
        self._check_slice(slice_index)
        if self.accepted is None or not self.accepted[slice_index].any():
            return None
        return self.accepted[slice_index].copy()

    @contextmanager
    def _edit(self, slice_index: int, accepted: bool = False):
        """Collect one edit's changes into the history; a change of any pixel is a new version.

        The accepted-prediction flags follow in the same undo item: set where an accepted prediction
        changed a pixel, cleared where any other edit did.
        """
        with self.history.recording(slice_index) as item:
            start = len(item.changes)
            try:
                yield item
            finally:
                if accepted and self.accepted is None:
                    self.accepted = np.zeros(self.shape, bool)
                if self.accepted is not None and len(item.changes) > start:
                    follow = mark_accepted if accepted else clear_edited
                    item.changes.extend(follow(self.accepted, self.data, item.changes[start:]))
                if len(item.changes) > start:
                    self.version += 1

    def _applied(self, item: HistoryItem | None) -> tuple[int, Box] | None:
        """Slice and box of an undone or redone item (a new version), or None when there was none."""
        if item is None:
            return None
        self.version += 1
        return item.slice_index, item.box()
