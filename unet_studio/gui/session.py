"""The session: the open project's state (images, labels, classes, predictions, model), with signals.

Views listen to the signals and never change the state behind the session's back; the painting tools,
the controllers and the panels call the session and its collaborators. The session is a QObject (it owns
every signal) composed of:

- :class:`~.project_files.ProjectFiles` (``files``): the project folder: open, claim, release, save; Qt-free;
- :class:`~.saving.Saving` (``saving``): what is unsaved, autosave (an :class:`~.autosaver.AutoSaver`:
  labels are written from a copy in a background thread a couple of seconds after the last edit) and
  "Save" on this thread;
- :class:`~.label_editing.LabelEditing` (``editing``): strokes, fill, undo/redo, accepting a prediction and
  importing labels into the current image;
- :class:`~.class_editing.ClassEditing` (``class_editing``): add, rename, recolour and delete classes;
- :class:`~.slice_data.SliceData` (``slices``): raw slices (a few cached) and the predictions of slices.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PySide6 import QtCore

from ..core import project as proj
from ..core.errors import UNetStudioError
from .class_editing import ClassEditing
from .label_editing import LabelEditing
from .project_files import ImageState, ProjectFiles
from .saving import Saving
from .slice_data import SliceData

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
        self.saving = Saving(self)
        self.autosaver = self.saving.autosaver  # tests and the crash driver tune its delays
        self.editing = LabelEditing(self)
        self.class_editing = ClassEditing(self)
        self.slices = SliceData(self)

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
        return self.files.folder

    @property
    def is_untitled(self) -> bool:
        return self.files.is_untitled

    @property
    def is_dirty(self) -> bool:
        return self.saving.is_dirty

    @property
    def last_save_error(self) -> str:
        """Why the last save failed ("" after a good one)."""
        return self.saving.last_save_error

    @property
    def model_dir(self) -> Path | None:
        return self.project.model_dir if self.project.has_model() else None

    def has_labels(self) -> bool:
        return any(state.has_labels() for state in self.images)

    # ------------------------------------------------------------------ navigation

    def set_current(self, image_index: int, slice_index: int = 0) -> None:
        if image_index < 0 or image_index >= len(self.images):
            self.current_index, self.current_slice = -1, 0
            self.current_changed.emit(-1, 0)
            return
        slice_index = int(np.clip(slice_index, 0, self.images[image_index].n_slices - 1))
        if (image_index, slice_index) == (self.current_index, self.current_slice):
            return
        self.editing.end_stroke()
        self.current_index, self.current_slice = image_index, slice_index
        self.current_changed.emit(image_index, slice_index)

    def set_current_slice(self, slice_index: int) -> None:
        self.set_current(self.current_index, slice_index)

    # ------------------------------------------------------------------ active class (edits: ClassEditing)

    def set_active_class(self, index: int) -> None:
        index = int(np.clip(index, 0, len(self.classes) - 1))
        if index != self.active_class:
            self.active_class = index
            self.active_class_changed.emit(index)

    # ------------------------------------------------------------------ model

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
        self.saving.project_edited()
        self.images_changed.emit()
        self.set_current(len(self.images) - 1, 0)
        return len(self.images) - 1

    def remove_image(self, index: int) -> None:
        """Take an image out of the project; its labels file stays, for that image only (see Project.retired).

        Its unsaved strokes are saved first, so that adding the image again brings them all back.
        """
        if self.images[index].dirty and self.project.folder is not None:
            self.save_now()
        state = self.images.pop(index)
        self.project.remove_image(state.entry)
        state.close()
        self.slices.forget()
        self.saving.project_edited()
        self.images_changed.emit()
        self.set_current(min(index, len(self.images) - 1), 0)

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
        self.saving.project_dirty = bool(problems or project.notices)
        self.classes_changed.emit()
        self.images_changed.emit()
        self.project_changed.emit()
        self.model_changed.emit()
        self.set_current(0 if self.images else -1, 0)
        self.saving.update_dirty()
        return problems

    def new_untitled_project(self) -> None:
        """Close the open project and start an empty untitled one (File > Open Image of another kind).

        The caller has settled the open project's unsaved work first (saved, or discarded by the person).
        """
        self.saving.stop()
        self.wait_for_writer()
        self.files.release(keep=self._worth_keeping())
        self._close_images()
        self.files.start_untitled()
        self.saving.forget_unsaved()
        self.active_class = 1 if len(self.classes) > 1 else 0
        self.classes_changed.emit()
        self.active_class_changed.emit(self.active_class)
        self.images_changed.emit()
        self.project_changed.emit()
        self.model_changed.emit()
        self.set_current(-1, 0)
        self.saving.update_dirty()

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
            state.close()
        self.images = []
        self.slices.forget()
        self.current_index = -1

    def _worth_keeping(self) -> bool:
        """Whether an untitled project holds anything to recover (labels or a model), not only an image list."""
        return self.has_labels() or self.model_dir is not None

    def discard_untitled(self) -> None:
        """Forget an untitled project (the person said so); its scratch folder is removed."""
        self.wait_for_writer()
        self.files.discard()
        self.saving.forget_unsaved()

    def close(self) -> None:
        """Stop the autosave timer, finish a background write and release the project and image files."""
        self.saving.stop()
        self.wait_for_writer()
        self.files.release(keep=self._worth_keeping())
        self._close_images()

    def ensure_folder(self) -> Path:
        """The project folder, creating an untitled one (autosaved scratch folder) when there is none."""
        if self.files.ensure_folder():
            self.project_changed.emit()
        return self.project.folder

    # ------------------------------------------------------------------ saving (see Saving)

    def save_now(self) -> bool:
        """Write everything on this thread (on close, on "Save"); returns False when it failed (reported)."""
        return self.saving.save_now()

    def save_in_background(self) -> None:
        """Write project.json and the changed labels from copies, in a writer thread."""
        self.saving.save_in_background()

    def wait_for_writer(self) -> None:
        """Finish a background write (its result is handled before this returns)."""
        self.saving.wait()
