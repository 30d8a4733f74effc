"""The session: the open project's state (images, labels, classes, predictions, model), with signals.

Views listen to the signals and never change the state behind the session's back; the painting tools,
the controllers and the panels call the session's methods. The session is composed of
:class:`~.project_files.ProjectFiles` (the project folder: open, claim, release, save; Qt-free) and an
:class:`~.autosaver.AutoSaver` (labels autosave into the project folder a couple of seconds after the
last edit, written from a copy in a background thread, and on close).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6 import QtCore

from ..core import project as proj
from ..core.errors import UNetStudioError
from ..core.labels import Box, fit_label_image
from ..core.predict import probabilities_to_labels
from .autosaver import AutoSaver
from .project_files import ImageState, ProjectFiles, close_quietly, write_job

log = logging.getLogger(__name__)

__all__ = ["ImageState", "Session"]


class Session(QtCore.QObject):
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

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.files = ProjectFiles()
        self.images: list[ImageState] = []
        self.current_index = -1
        self.current_slice = 0
        self.active_class = 1 if len(self.project.classes) > 1 else 0
        self._stroke_open = False
        self._slice_cache: dict[tuple[int, int], np.ndarray] = {}
        self._was_dirty = False
        self._project_dirty = False
        self.last_save_error = ""
        self.autosaver = AutoSaver(self._take_snapshot, write_job, self)
        self.autosaver.finished.connect(self._on_save_finished)

    # ------------------------------------------------------------------ state queries

    @property
    def current(self) -> ImageState | None:
        return self.images[self.current_index] if 0 <= self.current_index < len(self.images) else None

    @property
    def project(self) -> proj.Project:
        return self.files.project

    @property
    def previous_session(self) -> proj.PreviousSession | None:
        """Who had the project open before this session (crashed or running), set by :meth:`open_project`."""
        return self.files.previous_session

    @property
    def discarded(self) -> bool:
        """The person chose to drop this untitled project."""
        return self.files.discarded

    @discarded.setter
    def discarded(self, value: bool) -> None:
        self.files.discarded = bool(value)

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
        from ..core.io import normalize_percentile

        return normalize_percentile(self.image_slice(image_index, slice_index))

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
        if len(self.classes) >= proj.MAX_CLASSES:
            raise UNetStudioError(f"a project holds at most {proj.MAX_CLASSES} classes")
        color = color or proj.next_color([c.color for c in self.classes])
        self.classes.append(proj.ClassInfo(name or f"class {len(self.classes) + 1}", color))
        for state in self.images:  # class 256 needs uint16 labels: widen, never wrap
            state.labels.widen(len(self.classes))
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
        if not self.autosaver.is_scheduled():
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

    def prediction_labels(self, thresholds=()) -> np.ndarray | None:
        """The current slice's prediction as class values 1..K (most probable class, or per-class thresholds)."""
        probs = self.probabilities()
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

        state = self.current
        if state is None:
            raise UNetStudioError("open an image first, then import its labels")
        planes = fit_label_image(read_labels(Path(path)), state.labels.shape, self.current_slice, len(self.classes),
                                 str(path), state.name)
        self.end_stroke()
        for slice_index, values in planes.items():
            state.labels.begin_stroke(slice_index)
            height, width = values.shape
            box = state.labels.set_region(slice_index, (0, height, 0, width), values)
            state.labels.end_stroke()
            self.labels_changed.emit(self.current_index, slice_index, box)
        self._emit_dirty()
        self._schedule_autosave()
        return len(planes)

    def notify_model_changed(self) -> None:
        self.model_changed.emit()

    # ------------------------------------------------------------------ images and project folders

    def open_image(self, path: str | Path) -> int:
        """Add an image to the project (or find it) and show it; raises UNetStudioError when unreadable."""
        path = Path(path).resolve()
        for index, state in enumerate(self.images):
            if state.entry.path == path:
                self.set_current(index, 0)
                return index
        state = self.files.add_image(path)
        self.files.adopt(state)
        self.images.append(state)
        self._project_dirty = True
        self.images_changed.emit()
        self.set_current(len(self.images) - 1, 0)
        self._schedule_autosave()
        return len(self.images) - 1

    def remove_image(self, index: int) -> None:
        """Take an image out of the project; its labels file stays, for that image only (see Project.retired).

        Its unsaved strokes are saved first, so that adding the image again brings them all back.
        """
        if self.images[index].dirty and self.project.folder is not None:
            self.save_now()
        state = self.images.pop(index)
        self.project.remove_image(state.entry)
        close_quietly(state.stack)
        self._slice_cache.clear()
        self._project_dirty = True
        self.images_changed.emit()
        self.set_current(min(index, len(self.images) - 1), 0)
        self._schedule_autosave()

    def open_project(self, folder: str | Path) -> list[str]:
        """Open a project folder (creating it when it is empty); returns problems with single images.

        What :func:`~unet_studio.core.project.load_project` ignored in project.json is in ``project.notices``.
        """
        folder = Path(folder).resolve()
        project = self.files.read(folder)
        if self.project.folder != folder:
            self.files.release(keep=self._worth_keeping())
        self._close_images()
        self.files.claim(project)
        problems = []
        for entry in list(project.images):
            try:
                self.images.append(self.files.load_state(entry))
            except UNetStudioError as exc:
                # The entry stays in project.json (and its label file untouched) for when the file is back.
                problems.append(str(exc))
        self.active_class = min(self.active_class, len(self.classes) - 1)
        self._project_dirty = bool(problems or project.notices)
        self.classes_changed.emit()
        self.images_changed.emit()
        self.project_changed.emit()
        self.model_changed.emit()
        self.set_current(0 if self.images else -1, 0)
        self._emit_dirty()
        return problems

    def save_project_as(self, folder: str | Path) -> bool:
        """Save everything into ``folder`` (the project moves there; its model is copied along).

        Raises ProjectError (nothing changed) for a folder that holds another project's files; returns False
        when writing failed (reported through ``error``; the project stays where it was).
        """
        folder = Path(folder).resolve()
        self.files.check_save_target(folder)
        self.wait_for_writer()
        old_folder = self.files.move_to(folder)
        for state in self.images:
            state.forced_dirty = True
        if not self.save_now():
            self.project.folder = old_folder  # an untitled project's autosaved copy stays where it was
            return False
        self.files.moved(old_folder)
        self.project_changed.emit()
        self.model_changed.emit()
        return True

    def _close_images(self) -> None:
        for state in self.images:
            close_quietly(state.stack)
        self.images = []
        self._slice_cache.clear()
        self.current_index = -1

    def _worth_keeping(self) -> bool:
        """Whether an untitled project holds anything to recover (labels or a model), not only an image list."""
        return self.has_labels() or self.model_dir is not None

    def discard_untitled(self) -> None:
        """Forget an untitled project (the person said so); its scratch folder is removed."""
        self.wait_for_writer()
        self.files.discard()
        for state in self.images:
            state.saved_version, state.forced_dirty = state.labels.version, False
        self._project_dirty = False

    def close(self) -> None:
        """Stop the autosave timer, finish a background write and release the project and image files."""
        self.autosaver.stop()
        self.wait_for_writer()
        self.files.release(keep=self._worth_keeping())
        self._close_images()

    def ensure_folder(self) -> Path:
        """The project folder, creating an untitled one (autosaved scratch folder) when there is none."""
        if self.files.ensure_folder():
            self.project_changed.emit()
        return self.project.folder

    # ------------------------------------------------------------------ saving

    def _schedule_autosave(self) -> None:
        self.autosaver.schedule()

    def _emit_dirty(self) -> None:
        dirty = self.is_dirty
        if dirty != self._was_dirty:
            self._was_dirty = dirty
            self.dirty_changed.emit(dirty)

    def _take_snapshot(self):
        """The autosaver's job: None when nothing changed (GUI thread; the writer gets copies)."""
        if not self.is_dirty:
            return None
        self.about_to_save.emit()  # views put their settings into project.settings
        had_folder = self.project.folder is not None
        job = self.files.snapshot(self.images)
        if not had_folder:
            self.project_changed.emit()
        self._project_dirty = False
        return job

    def save_in_background(self) -> None:
        """Write project.json and the changed labels from copies, in a writer thread."""
        self.autosaver.save_in_background()

    def save_now(self) -> bool:
        """Write everything on this thread (on close, on "Save"); returns False when it failed (reported)."""
        self.wait_for_writer()
        self.autosaver.stop()
        try:
            self.about_to_save.emit()
            had_folder = self.project.folder is not None
            job = self.files.snapshot(self.images)
            if not had_folder:
                self.project_changed.emit()
        except UNetStudioError as exc:
            self._report_save_error(str(exc))
            return False
        done, error = write_job(job)
        self._mark_saved(done)
        if error:
            self._report_save_error(error)
            return False
        self._project_dirty = False
        self.last_save_error = ""
        self.saved.emit(str(self.project.folder))
        self._emit_dirty()
        return True

    def wait_for_writer(self) -> None:
        """Finish a background write (its result is handled before this returns)."""
        self.autosaver.wait()

    def _on_save_finished(self, done, error: str) -> None:
        self._mark_saved(done)
        if error:
            self._project_dirty = True
            self._report_save_error(error)
        else:
            self.last_save_error = ""
            self.saved.emit(str(self.project.folder))
        self._emit_dirty()

    @staticmethod
    def _mark_saved(done) -> None:
        for state, version in done:
            state.saved_version = version
            state.forced_dirty = False

    def _report_save_error(self, message: str) -> None:
        self.last_save_error = message
        self.error.emit("Labels not saved", f"{message}\n\nYour labels are still in memory; "
                        "fix the problem or use File > Save Project As.")
