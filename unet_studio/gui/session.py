"""The session: the open project's state (images, labels, classes, predictions, model), with signals.

Views listen to the signals and never change the state behind the session's back; the painting tools,
the controllers and the panels call the session's methods. Labels autosave into the project folder a
couple of seconds after the last edit, written from a copy in a background thread, and on close.

Opening and closing images and project folders live in :mod:`.session_project`, saving in
:mod:`.session_saving` (mixins of :class:`Session`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6 import QtCore

from ..core.project import folder as proj
from ..core.project import recovery as recovery
from ..core.errors import UNetStudioError
from ..core.labels import Box
from .session_project import ImageState, ProjectMixin
from .session_saving import SavingMixin


class Session(ProjectMixin, SavingMixin, QtCore.QObject):
    """Owns the project state and tells the views about every change."""

    project_changed = QtCore.Signal()                  # a project was opened, created or saved elsewhere
    images_changed = QtCore.Signal()                   # the image list changed
    current_changed = QtCore.Signal(int, int)          # image index, slice index
    labels_changed = QtCore.Signal(int, int, object)   # image index, slice index, Box or None (all)
    classes_changed = QtCore.Signal()
    active_class_changed = QtCore.Signal(int)          # class index (0-based; painted value = index + 1)
    probabilities_changed = QtCore.Signal(int, int)    # image index, slice index
    model_changed = QtCore.Signal()
    dirty_changed = QtCore.Signal(bool)
    about_to_save = QtCore.Signal()                    # last chance to update project.settings
    saved = QtCore.Signal(str)                         # where
    error = QtCore.Signal(str, str)                    # title, message
    _save_finished = QtCore.Signal(object, str)        # from the writer thread: saved states, error

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.project = proj.Project()
        self.images: list[ImageState] = []
        self.current_index = -1
        self.current_slice = 0
        self.active_class = 1 if len(self.project.classes) > 1 else 0
        self._stroke_open = False
        self._slice_cache: dict[tuple[int, int], np.ndarray] = {}
        self._writer = None
        self._was_dirty = False
        self._project_dirty = False
        self.discarded = False  # the person chose to drop this untitled project
        self.last_save_error = ""
        self.previous_session: recovery.PreviousSession | None = None  # set by open_project (see core.recovery)
        self._autosave = QtCore.QTimer(self)
        self._autosave.setSingleShot(True)
        self._autosave.setInterval(self.AUTOSAVE_DELAY_MS)
        self._autosave.timeout.connect(self.save_in_background)
        self._save_finished.connect(self._on_save_finished)

    # ------------------------------------------------------------------ state queries

    @property
    def current(self) -> ImageState | None:
        return self.images[self.current_index] if 0 <= self.current_index < len(self.images) else None

    @property
    def classes(self) -> list[proj.ClassInfo]:
        return self.project.classes

    @property
    def folder(self) -> Path | None:
        return self.project.folder

    @property
    def is_untitled(self) -> bool:
        return proj.is_untitled(self.project.folder)

    @property
    def is_dirty(self) -> bool:
        return self._project_dirty or any(state.dirty for state in self.images)

    @property
    def model_dir(self) -> Path | None:
        return self.project.model_dir if self.project.has_model() else None

    def has_labels(self) -> bool:
        return any(state.labels.data.any() for state in self.images)

    def image_slice(self, image_index: int | None = None, slice_index: int | None = None) -> np.ndarray:
        """The raw (C, Y, X) data of a slice, in the file's dtype (a few slices are cached)."""
        image_index = self.current_index if image_index is None else image_index
        slice_index = self.current_slice if slice_index is None else slice_index
        key = (image_index, slice_index)
        if key not in self._slice_cache:
            if len(self._slice_cache) >= 6:
                self._slice_cache.pop(next(iter(self._slice_cache)))
            stack = self.images[image_index].stack
            try:
                data = np.asarray(stack.get_slice(slice_index))
            except UNetStudioError as exc:
                # A damaged page: the slice shows blank (its labels stay editable) and the person hears why, once.
                data = np.zeros(stack.shape[1:], stack.dtype)
                self.error.emit("Cannot show this slice", str(exc))
            self._slice_cache[key] = data
        return self._slice_cache[key]

    def normalized_slice(self, image_index: int | None = None, slice_index: int | None = None) -> np.ndarray:
        from ..core.io import stack as io

        return io.normalize_percentile(self.image_slice(image_index, slice_index))

    def probabilities(self, image_index: int | None = None, slice_index: int | None = None):
        """The (K, Y, X) uint8 prediction of a slice, or None."""
        image_index = self.current_index if image_index is None else image_index
        slice_index = self.current_slice if slice_index is None else slice_index
        if not 0 <= image_index < len(self.images):
            return None
        return self.images[image_index].probabilities.get(slice_index)

    # ------------------------------------------------------------------ navigation

    def set_current(self, image_index: int, slice_index: int = 0) -> None:
        if image_index < 0 or image_index >= len(self.images):
            self.current_index, self.current_slice = -1, 0
            self.current_changed.emit(-1, 0)
            return
        slice_index = int(np.clip(slice_index, 0, self.images[image_index].n_slices - 1))
        if (image_index, slice_index) == (self.current_index, self.current_slice):
            return
        self.end_stroke()
        self.current_index, self.current_slice = image_index, slice_index
        self.current_changed.emit(image_index, slice_index)

    def set_current_slice(self, slice_index: int) -> None:
        self.set_current(self.current_index, slice_index)

    # ------------------------------------------------------------------ classes

    def set_active_class(self, index: int) -> None:
        index = int(np.clip(index, 0, len(self.classes) - 1))
        if index != self.active_class:
            self.active_class = index
            self.active_class_changed.emit(index)

    def add_class(self, name: str | None = None, color: str | None = None) -> int:
        if len(self.classes) >= 255:
            raise UNetStudioError("a project holds at most 255 classes")
        color = color or proj.next_color([c.color for c in self.classes])
        self.classes.append(proj.ClassInfo(name or f"class {len(self.classes) + 1}", color))
        self._classes_edited()
        self.set_active_class(len(self.classes) - 1)
        return len(self.classes) - 1

    def rename_class(self, index: int, name: str) -> None:
        if name and self.classes[index].name != name:
            self.classes[index].name = name
            self._classes_edited()

    def recolor_class(self, index: int, color: str) -> None:
        if self.classes[index].color != color:
            self.classes[index].color = color
            self._classes_edited()

    def remove_class(self, index: int) -> None:
        """Delete a class: its pixels become unlabelled, higher classes move down (undo history is cleared)."""
        if len(self.classes) <= 1:
            raise UNetStudioError("a project needs at least one class")
        value = index + 1
        for state in self.images:
            data = state.labels.data
            if (data >= value).any():
                data[data == value] = 0
                data[data > value] -= 1
                state.labels.clear_history()
                state.forced_dirty = True
            state.probabilities.clear()
        del self.classes[index]
        self.active_class = min(self.active_class, len(self.classes) - 1)
        self._classes_edited()
        if self.current is not None:
            self.labels_changed.emit(self.current_index, self.current_slice, None)
            self.probabilities_changed.emit(self.current_index, self.current_slice)

    def _classes_edited(self) -> None:
        self._project_dirty = True
        self.classes_changed.emit()
        self._schedule_autosave()

    # ------------------------------------------------------------------ painting (current image)

    def begin_stroke(self) -> None:
        state = self.current
        if state is not None:
            state.labels.begin_stroke(self.current_slice)
            self._stroke_open = True

    def end_stroke(self) -> None:
        state = self.current
        if self._stroke_open and state is not None:
            state.labels.end_stroke()
            self._schedule_autosave()
        self._stroke_open = False

    def paint_line(self, start, end, radius: float, value: int) -> Box | None:
        state = self.current
        if state is None:
            return None
        box = state.labels.paint_line(self.current_slice, start, end, radius, value)
        self._after_edit(box)
        if not self._autosave.isActive():
            self._schedule_autosave()  # a long drag is autosaved too, not only once released
        return box

    def fill(self, y: float, x: float, value: int) -> Box | None:
        state = self.current
        if state is None:
            return None
        box = state.labels.fill(self.current_slice, y, x, value)
        self._after_edit(box)
        self._schedule_autosave()
        return box

    def set_slice_labels(self, values: np.ndarray) -> Box | None:
        """Replace the current slice's labels by ``values`` as one undoable stroke."""
        state = self.current
        if state is None:
            return None
        height, width = values.shape
        state.labels.begin_stroke(self.current_slice)
        box = state.labels.set_region(self.current_slice, (0, height, 0, width), values)
        state.labels.end_stroke()
        self._after_edit(box)
        self._schedule_autosave()
        return box

    def label_at(self, y: int, x: int) -> int:
        state = self.current
        if state is None:
            return 0
        _, height, width = state.labels.shape
        if 0 <= y < height and 0 <= x < width:
            return int(state.labels.data[self.current_slice, y, x])
        return 0

    def undo(self) -> bool:
        return self._history(lambda labels: labels.undo())

    def redo(self) -> bool:
        return self._history(lambda labels: labels.redo())

    def _history(self, action) -> bool:
        state = self.current
        if state is None:
            return False
        self.end_stroke()
        result = action(state.labels)
        if result is None:
            return False
        slice_index, box = result
        self.set_current_slice(slice_index)
        self.labels_changed.emit(self.current_index, slice_index, box)
        self._schedule_autosave()
        self._emit_dirty()
        return True

    def _after_edit(self, box: Box | None) -> None:
        if box is not None:
            self.labels_changed.emit(self.current_index, self.current_slice, box)
            self._emit_dirty()

    # ------------------------------------------------------------------ predictions

    def set_probabilities(self, image_index: int, slice_index: int, probs: np.ndarray) -> None:
        """Store a (K, Y, X) prediction (float in [0, 1] or uint8) and tell the views."""
        if not 0 <= image_index < len(self.images):
            return
        probs = np.asarray(probs)
        if probs.dtype != np.uint8:
            probs = np.clip(np.rint(probs * 255.0), 0, 255).astype(np.uint8)
        self.images[image_index].probabilities[slice_index] = probs
        self.probabilities_changed.emit(image_index, slice_index)

    def clear_probabilities(self) -> None:
        for state in self.images:
            state.probabilities.clear()
        if self.current is not None:
            self.probabilities_changed.emit(self.current_index, self.current_slice)

    def prediction_labels(self, thresholds=()) -> np.ndarray | None:
        """The current slice's prediction as class values 1..K (see :func:`argmax_labels`)."""
        probs = self.probabilities()
        if probs is None:
            return None
        return argmax_labels(probs, thresholds)

    def accept_prediction(self, thresholds=()) -> Box | None:
        """Copy the current slice's prediction into its labels, as one undoable stroke."""
        values = self.prediction_labels(thresholds)
        if values is None:
            return None
        return self.set_slice_labels(values.astype(np.uint8))

    def import_labels(self, path: str | Path) -> int:
        """Put a label image (0 = unlabelled, k = class k of the project) into the current image, undoably.

        A (Y, X) label image replaces the labels of the current slice, an (S, Y, X) one those of every slice
        (one undo step per slice); returns the number of slices changed. A file that cannot be read, has
        another size or holds values that are not classes of the project raises ImageReadError and changes
        nothing.
        """
        from ..core.io import stack as io
        from ..core.errors import ImageReadError

        state = self.current
        if state is None:
            raise UNetStudioError("open an image first, then import its labels")
        path = Path(path)
        data = io.read_labels(path)
        n_slices, height, width = state.labels.shape
        if data.shape == (height, width):
            planes = {self.current_slice: data}
        elif data.shape == (n_slices, height, width):
            planes = dict(enumerate(data))
        else:
            size = " x ".join(str(n) for n in data.shape)
            whole = f", or {n_slices} x {height} x {width} for the whole stack" if n_slices > 1 else ""
            raise ImageReadError(f"Cannot import '{path}': the label image is {size} pixels but the image "
                                 f"'{state.name}' is {height} x {width}{whole}. Choose the label image made for "
                                 "this image.")
        top, k = (int(data.max()) if data.size else 0), len(self.classes)
        if top > k:
            raise ImageReadError(f"Cannot import '{path}': it holds the label value {top} but the project has {k} "
                                 f"classes (values 1 to {k}, 0 = unlabelled). Add classes in the Classes panel "
                                 f"until there are {top}, or relabel the file.")
        self.end_stroke()
        for slice_index, values in planes.items():
            state.labels.begin_stroke(slice_index)
            box = state.labels.set_region(slice_index, (0, height, 0, width), values.astype(np.uint8))
            state.labels.end_stroke()
            self.labels_changed.emit(self.current_index, slice_index, box)
        self._emit_dirty()
        self._schedule_autosave()
        return len(planes)

    def notify_model_changed(self) -> None:
        self.model_changed.emit()


def argmax_labels(probs: np.ndarray, thresholds=()) -> np.ndarray:
    """Class values (k + 1) of a (K, Y, X) prediction (uint8 0..255 or float 0..1), as uint8.

    The rule of ``core.postprocess.probabilities_to_labels`` (PyTorch-free, like this module).
    """
    from ..core.predict.postprocess import probabilities_to_labels

    probs = np.asarray(probs)
    thresholds = list(thresholds or ())
    if not (len(thresholds) == probs.shape[0] and any(t > 0 for t in thresholds)):
        thresholds = []
    elif probs.dtype == np.uint8:
        probs = probs.astype(np.float32) / 255.0
    return probabilities_to_labels(probs, list(range(1, probs.shape[0] + 1)), thresholds).astype(np.uint8)

