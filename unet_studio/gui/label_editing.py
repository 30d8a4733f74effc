"""Label editing of the session's current image: strokes, fill, undo and redo, accepted predictions, imports.

The tools (:mod:`unet_studio.gui.tools`), the menus and the controllers call :class:`LabelEditing`; it
edits the current image's :class:`~unet_studio.core.labels.LabelVolume` and tells the views through the
session's signals (``labels_changed``, ``dirty_changed``), then asks the session's :class:`~.saving.Saving`
for an autosave.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

from ..core.errors import UNetStudioError
from ..core.labels import Box, LabelMapping, LabelVolume, apply_mapping
from ..core.predict import probabilities_to_labels

if TYPE_CHECKING:
    from .session import Session

__all__ = ["LabelEditing"]


class LabelEditing:
    """Edits the labels of the session's current slice, each stroke one undo step.

    Parameters
    ----------
    session : Session
        Whose current image and slice are edited, and whose signals announce the edits.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.stroke_open = False

    # ------------------------------------------------------------------ strokes

    def begin_stroke(self) -> None:
        """Group the edits until :meth:`end_stroke` into one undo step."""
        state = self.session.current
        if state is not None:
            state.labels.begin_stroke(self.session.current_slice)
            self.stroke_open = True

    def end_stroke(self) -> None:
        """Close the open stroke (if any) and schedule its autosave."""
        state = self.session.current
        if self.stroke_open and state is not None:
            state.labels.end_stroke()
            self.session.saving.schedule()
        self.stroke_open = False

    def paint_line(self, start, end, radius: float, value: int) -> Box | None:
        """Paint the segment ``start``-``end`` (y, x) with a brush of ``radius``; returns the changed box."""
        session = self.session
        state = session.current
        if state is None:
            return None
        box = state.labels.paint_line(session.current_slice, start, end, radius, value)
        self._after_edit(box)
        if not session.saving.is_scheduled():
            session.saving.schedule()  # a long drag is autosaved too, not only once released
        return box

    def fill_region(self, y: float, x: float, value: int, intensity: np.ndarray | None = None,
                    tolerance=None) -> tuple[Box, np.ndarray] | None:
        """The region a fill at (y, x) would change (see :meth:`LabelVolume.fill_region`), unchanged yet."""
        state = self.session.current
        if state is None:
            return None
        return state.labels.fill_region(self.session.current_slice, y, x, value, intensity, tolerance)

    def fill_mask(self, box: Box, mask: np.ndarray, value: int) -> Box | None:
        """Fill a region found by :meth:`fill_region` with ``value``, as one undo step; returns its box."""
        state = self.session.current
        if state is None:
            return None
        self.end_stroke()
        box = state.labels.fill_mask(self.session.current_slice, box, mask, value)
        self._after_edit(box)
        self.session.saving.schedule()
        return box

    def set_slice_labels(self, values: np.ndarray, accepted: bool = False) -> Box | None:
        """Replace the current slice's labels by ``values`` as one undoable stroke.

        With ``accepted`` the values are an accepted prediction: the pixels they change are flagged as
        such (:attr:`~unet_studio.core.labels.LabelVolume.accepted`) and never validated on.
        """
        state = self.session.current
        if state is None:
            return None
        box = _replace_slice(state.labels, self.session.current_slice, values, accepted)
        self._after_edit(box)
        self.session.saving.schedule()
        return box

    def label_at(self, y: int, x: int) -> int:
        """The label value at (y, x) of the current slice (0 outside the image or without one)."""
        state = self.session.current
        if state is None:
            return 0
        _, height, width = state.labels.shape
        if 0 <= y < height and 0 <= x < width:
            return int(state.labels.data[self.session.current_slice, y, x])
        return 0

    # ------------------------------------------------------------------ history

    def undo(self) -> bool:
        """Undo the last stroke of the current image (showing its slice); False when there is none."""
        return self._history(lambda labels: labels.undo())

    def redo(self) -> bool:
        """Redo the last undone stroke of the current image; False when there is none."""
        return self._history(lambda labels: labels.redo())

    def _history(self, action: Callable[[LabelVolume], tuple[int, Box] | None]) -> bool:
        session = self.session
        state = session.current
        if state is None:
            return False
        self.end_stroke()
        result = action(state.labels)
        if result is None:
            return False
        slice_index, box = result
        session.set_current_slice(slice_index)
        session.labels_changed.emit(session.current_index, slice_index, box)
        session.saving.schedule()
        session.saving.update_dirty()
        return True

    def _after_edit(self, box: Box | None) -> None:
        if box is not None:
            self.session.labels_changed.emit(self.session.current_index, self.session.current_slice, box)
            self.session.saving.update_dirty()

    # ------------------------------------------------------------------ labels from elsewhere

    def prediction_labels(self, thresholds=()) -> np.ndarray | None:
        """The current slice's prediction as class values 1..K (most probable class, or per-class thresholds)."""
        probs = self.session.slices.probabilities()
        if probs is None:
            return None
        thresholds = list(thresholds or ())
        return probabilities_to_labels(probs, list(range(1, len(probs) + 1)),
                                       thresholds if len(thresholds) == len(probs) else ())

    def accept_prediction(self, thresholds=()) -> Box | None:
        """Copy the current slice's prediction into its labels, as one undoable stroke.

        The pixels it changes are flagged as accepted predictions until a person paints over them.
        """
        values = self.prediction_labels(thresholds)
        if values is None:
            return None
        return self.set_slice_labels(values, accepted=True)

    def import_planes(self, planes: dict[int, np.ndarray], mapping: LabelMapping,
                      instances: dict[int, np.ndarray] | None = None) -> int:
        """Write imported label values (``{slice: (Y, X) file values}``) mapped to classes, as one undo step.

        File values become classes through ``mapping`` (see :func:`~unet_studio.core.labels.apply_mapping`);
        the labels are autosaved like a stroke. Returns the number of slices that changed.
        """
        session = self.session
        state = session.current
        if state is None:
            raise UNetStudioError("open an image first, then import its labels")
        self.end_stroke()
        changed = state.labels.set_slices({k: apply_mapping(v, mapping) for k, v in planes.items()}, instances)
        for slice_index, box in changed.items():
            session.labels_changed.emit(session.current_index, slice_index, box)
        session.saving.update_dirty()
        session.saving.schedule()
        return len(changed)


def _replace_slice(labels: LabelVolume, slice_index: int, values: np.ndarray, accepted: bool = False) -> Box | None:
    """Write ``values`` over a whole slice as one stroke (one undo step)."""
    height, width = values.shape
    labels.begin_stroke(slice_index)
    box = labels.set_region(slice_index, (0, height, 0, width), values, accepted)
    labels.end_stroke()
    return box
