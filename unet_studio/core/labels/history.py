"""Undo and redo of label edits: one item per stroke, bounded in bytes (napari's label history).

An undo item is one stroke, a list of ``(slice, box, values)`` changes that hold the *other* state of the
box. Undoing swaps the stored values with the array's (latest change first), which turns the item into
its redo item, so each change keeps only one copy of its box. The history is bounded in bytes; the
oldest items are dropped first. A new edit clears redo.
"""

from __future__ import annotations

import logging
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from .drawing import Box, union_boxes

log = logging.getLogger(__name__)


@dataclass
class Change:
    """One rectangular change: ``values`` hold the box's content before (or after, once undone).

    ``layer`` says which array: "labels", "accepted" (the accepted-prediction flags of
    :class:`~.volume.LabelVolume`, so that undo restores them with the labels) or "instances" (its imported
    instance images, see :mod:`.instances`).
    """

    slice_index: int
    box: Box
    values: np.ndarray
    layer: str = "labels"

    def swap(self, data: np.ndarray, accepted: np.ndarray | None = None,
             instances: np.ndarray | None = None) -> None:
        """Exchange the stored values with those of the box in ``data`` (``(S, Y, X)``), or in
        ``accepted`` (``instances``) for a change of the accepted-prediction flags (instance images)."""
        target = {"accepted": accepted, "instances": instances}.get(self.layer, data)
        if target is None:
            return
        y0, y1, x0, x1 = self.box
        region = target[self.slice_index, y0:y1, x0:x1]
        current = region.copy()
        region[...] = self.values
        self.values = current


@dataclass
class HistoryItem:
    """One undo step (a stroke): its changes, in the order they were made."""

    slice_index: int
    changes: list[Change] = field(default_factory=list)

    @property
    def nbytes(self) -> int:
        return sum(change.values.nbytes for change in self.changes)

    def box(self) -> Box | None:
        """Union of the boxes of the changes made on the item's slice."""
        boxes = [c.box for c in self.changes if c.slice_index == self.slice_index]
        return union_boxes(boxes) if boxes else None


class LabelHistory:
    """Stroke-grouped undo and redo items of one label array, at most ``max_bytes`` together.

    Parameters
    ----------
    max_bytes : int
        Memory bound of undo and redo together; the oldest undo items are dropped beyond it.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._undo: deque[HistoryItem] = deque()
        self._redo: deque[HistoryItem] = deque()
        self._stroke: HistoryItem | None = None
        self._nbytes = 0  # of undo and redo items (undo/redo swap values, so sizes stay)

    @property
    def nbytes(self) -> int:
        """Bytes held by undo and redo items."""
        return self._nbytes

    @property
    def can_undo(self) -> bool:
        """True when there is an item to undo (a stroke in progress counts once it changed pixels)."""
        return bool(self._undo) or bool(self._stroke and self._stroke.changes)

    @property
    def can_redo(self) -> bool:
        """True when there is an undone item to redo."""
        return bool(self._redo)

    def begin_stroke(self, slice_index: int) -> None:
        """Start grouping edits of ``slice_index`` into one item (ends an open stroke first)."""
        self.end_stroke()
        self._stroke = HistoryItem(slice_index)

    def end_stroke(self) -> None:
        """Close the open stroke; it becomes one undo item if it changed anything."""
        stroke, self._stroke = self._stroke, None
        if stroke is not None and stroke.changes:
            self._push_undo(stroke)

    @contextmanager
    def recording(self, slice_index: int):
        """Yield the item that collects one edit's changes: the open stroke, or an item of its own."""
        stroke = self._stroke
        if stroke is not None and stroke.slice_index != slice_index:
            # One undo item belongs to one slice: an edit elsewhere starts a new stroke there.
            log.debug("edit of slice %d inside a stroke of slice %d", slice_index, stroke.slice_index)
            self.begin_stroke(slice_index)
            stroke = self._stroke
        item = stroke if stroke is not None else HistoryItem(slice_index)
        start = len(item.changes)
        try:
            yield item
        finally:
            if len(item.changes) > start:
                if stroke is None:
                    self._push_undo(item)
                else:
                    # A stroke in progress is a new edit too: what was undone before cannot be redone.
                    self._clear_redo()

    def undo(self, data: np.ndarray, accepted: np.ndarray | None = None,
             instances: np.ndarray | None = None) -> HistoryItem | None:
        """Undo the last item on ``data`` (and the ``accepted`` flags, the ``instances``); None when there is none.

        Ends an open stroke first.
        """
        self.end_stroke()
        if not self._undo:
            return None
        item = self._undo.pop()
        for change in reversed(item.changes):
            change.swap(data, accepted, instances)
        self._redo.append(item)
        return item

    def redo(self, data: np.ndarray, accepted: np.ndarray | None = None,
             instances: np.ndarray | None = None) -> HistoryItem | None:
        """Redo the last undone item on ``data`` (and the ``accepted`` flags); None when there is none."""
        self.end_stroke()
        if not self._redo:
            return None
        item = self._redo.pop()
        for change in item.changes:
            change.swap(data, accepted, instances)
        self._undo.append(item)
        return item

    def clear(self) -> None:
        """Forget every undo and redo item and the open stroke."""
        self._stroke = None
        self._undo.clear()
        self._redo.clear()
        self._nbytes = 0

    def _clear_redo(self) -> None:
        self._nbytes -= sum(item.nbytes for item in self._redo)
        self._redo.clear()

    def _push_undo(self, item: HistoryItem) -> None:
        self._clear_redo()
        self._undo.append(item)
        self._nbytes += item.nbytes
        while self._nbytes > self.max_bytes and self._undo:
            dropped = self._undo.popleft()
            self._nbytes -= dropped.nbytes
            log.debug("undo history over %d bytes: dropped an item of %d bytes", self.max_bytes, dropped.nbytes)
