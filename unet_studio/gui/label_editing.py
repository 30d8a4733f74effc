"""Label editing of the session's current image: strokes, fill, undo and redo, accepted predictions, imports.

The tools (:mod:`unet_studio.gui.tools`), the menus and the controllers call :class:`LabelEditing`; it
edits the current image's :class:`~unet_studio.core.labels.LabelVolume` and tells the views through the
session's signals (``labels_changed``, ``dirty_changed``), then asks the session's :class:`~.saving.Saving`
for an autosave.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..core.errors import UNetStudioError
from ..core.labels import Box, LabelVolume, fit_label_image
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

    def fill(self, y: float, x: float, value: int) -> Box | None:
        """Flood-fill the connected region under (y, x) with ``value``; returns the changed box."""
        state = self.session.current
        if state is None:
            return None
        box = state.labels.fill(self.session.current_slice, y, x, value)
        self._after_edit(box)
        self.session.saving.schedule()
        return box

    def set_slice_labels(self, values: np.ndarray) -> Box | None:
        """Replace the current slice's labels by ``values`` as one undoable stroke."""
        state = self.session.current
        if state is None:
            return None
        box = _replace_slice(state.labels, self.session.current_slice, values)
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
        """Copy the current slice's prediction into its labels, as one undoable stroke."""
        values = self.prediction_labels(thresholds)
        if values is None:
            return None
        return self.set_slice_labels(values)

    def import_labels(self, path: str | Path) -> int:
        """Put a label image (0 = unlabelled, k = class k of the project) into the current image, undoably.

        A (Y, X) label image replaces the labels of the current slice, an (S, Y, X) one those of every slice
        (one undo step per slice); returns the number of slices changed. A file that cannot be read, has
        another size or holds values that are not classes of the project raises ImageReadError and changes
        nothing.
        """
        from ..core.io import read_labels

        session = self.session
        state = session.current
        if state is None:
            raise UNetStudioError("open an image first, then import its labels")
        planes = fit_label_image(read_labels(Path(path)), state.labels.shape, session.current_slice,
                                 len(session.classes), str(path), state.name)
        self.end_stroke()
        for slice_index, values in planes.items():
            box = _replace_slice(state.labels, slice_index, values)
            session.labels_changed.emit(session.current_index, slice_index, box)
        session.saving.update_dirty()
        session.saving.schedule()
        return len(planes)


def _replace_slice(labels: LabelVolume, slice_index: int, values: np.ndarray) -> Box | None:
    """Write ``values`` over a whole slice as one stroke (one undo step)."""
    height, width = values.shape
    labels.begin_stroke(slice_index)
    box = labels.set_region(slice_index, (0, height, 0, width), values)
    labels.end_stroke()
    return box
