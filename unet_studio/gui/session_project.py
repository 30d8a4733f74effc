"""The session's images and project folder: opening images and projects, saving as, discarding, closing.

A mixin of :class:`~unet_studio.gui.session.Session` (kept apart to keep each file readable), like
:mod:`.session_saving`. An open project folder is claimed (a lock file that names this process, see
:mod:`unet_studio.core.project.recovery`) and released when it is closed cleanly; an untitled project lives in an
autosaved scratch folder until it is saved somewhere or discarded.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.project import folder as proj
from ..core.project import recovery as recovery
from ..core.errors import UNetStudioError
from ..core.labels import LabelVolume

log = logging.getLogger(__name__)


@dataclass
class ImageState:
    """One image of the session: its lazily read stack, its labels and its predictions."""

    entry: proj.ImageEntry
    stack: object  # core.io.ImageStack
    labels: LabelVolume
    saved_version: int = 0
    forced_dirty: bool = False
    probabilities: dict[int, np.ndarray] = field(default_factory=dict)  # slice -> (K, Y, X) uint8

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def n_slices(self) -> int:
        return self.labels.shape[0]

    @property
    def dirty(self) -> bool:
        return self.forced_dirty or self.labels.version != self.saved_version

    def labelled_slices(self) -> list[int]:
        data = self.labels.data
        return [int(s) for s in np.flatnonzero(data.reshape(data.shape[0], -1).any(axis=1))]


class ProjectMixin:
    """Images and project folders of :class:`Session` (uses its project, images, signals and saving)."""

    def open_image(self, path: str | Path) -> int:
        """Add an image to the project (or find it) and show it; raises UNetStudioError when unreadable."""
        path = Path(path).resolve()
        for index, state in enumerate(self.images):
            if state.entry.path == path:
                self.set_current(index, 0)
                return index
        entry = proj.ImageEntry(path=path, name=self.project.unique_name(path))
        state = self._load_state(entry)
        self.project.images.append(entry)
        self.images.append(state)
        self._project_dirty = True
        self.images_changed.emit()
        self.set_current(len(self.images) - 1, 0)
        self._schedule_autosave()
        return len(self.images) - 1

    def _load_state(self, entry: proj.ImageEntry) -> ImageState:
        from ..core.io import stack as io

        if not entry.path.exists():
            raise UNetStudioError(f"the image {entry.path} does not exist (moved or deleted?)")
        stack = io.read_image(entry.path)
        n_slices, channels, height, width = stack.shape
        shape = (n_slices, height, width)
        labels = None
        try:
            # Labels of the whole stack, a few raw slices and the display's copies of one slice live in memory.
            needed = n_slices * height * width + 2 * stack.slice_nbytes + height * width * (4 * channels + 16)
            io.require_memory(entry.path, needed, stack.describe_size(whole=True), "opening")
            if self.project.folder is not None:
                label_path = self.project.labels_path(entry.name)
                if label_path.is_file():
                    labels = proj.load_labels(label_path, shape, len(self.project.classes))
        except BaseException:
            _close_quietly(stack)
            raise
        volume = LabelVolume(shape=shape) if labels is None else LabelVolume(data=labels)
        return ImageState(entry=entry, stack=stack, labels=volume, saved_version=volume.version)

    def remove_image(self, index: int) -> None:
        state = self.images.pop(index)
        self.project.images.remove(state.entry)
        _close_quietly(state.stack)
        self._slice_cache.clear()
        self._project_dirty = True
        self.images_changed.emit()
        self.set_current(min(index, len(self.images) - 1), 0)
        self._schedule_autosave()

    def open_project(self, folder: str | Path) -> list[str]:
        """Open a project folder (creating it when it is empty); returns problems with single images."""
        folder = Path(folder).resolve()
        if proj.is_project_folder(folder):
            project = proj.load_project(folder)
        else:
            if folder.exists() and not folder.is_dir():
                raise proj.ProjectError(f"{folder} is a file, not a project folder; open a folder")
            if folder.exists() and any(folder.iterdir()):
                raise proj.ProjectError(f"{folder} is not a UNet Studio project folder and not empty")
            project = proj.create_project(folder)
        if self.project.folder != folder:
            self._release_folder()
        self._close_images()
        self.project = project
        self.previous_session = recovery.claim(folder)
        problems = []
        for entry in list(project.images):
            try:
                self.images.append(self._load_state(entry))
            except UNetStudioError as exc:
                # The entry stays in project.json (and its label file untouched) for when the file is back.
                problems.append(str(exc))
        self.active_class = min(self.active_class, len(self.classes) - 1)
        self._project_dirty = bool(problems)
        if not self.is_untitled:
            proj.add_recent(folder)
        self.classes_changed.emit()
        self.images_changed.emit()
        self.project_changed.emit()
        self.model_changed.emit()
        self.set_current(0 if self.images else -1, 0)
        self._emit_dirty()
        return problems

    def save_project_as(self, folder: str | Path) -> None:
        """Save everything into ``folder`` (the project moves there; its model is copied along)."""
        folder = Path(folder).resolve()
        if proj.is_project_folder(folder) and folder != self.project.folder:
            raise proj.ProjectError(f"{folder} already holds another project; choose an empty folder")
        self.wait_for_writer()
        old_model = self.model_dir
        old_folder = self.project.folder
        self.project.folder = folder
        try:
            if old_model is not None and old_model.resolve() != self.project.model_dir.resolve():
                shutil.copytree(old_model, self.project.model_dir, dirs_exist_ok=True)
        except OSError as exc:
            self.project.folder = old_folder
            raise proj.ProjectError(f"cannot copy the model into {folder} ({exc.strerror or exc}); choose "
                                    "another folder") from None
        for state in self.images:
            state.forced_dirty = True
        if not self.save_now():
            # Reported by save_now; the project (and an untitled project's autosaved copy) stays where it was.
            self.project.folder = old_folder
            return
        recovery.claim(folder)
        if old_folder is not None and proj.is_untitled(old_folder) and old_folder != folder:
            shutil.rmtree(old_folder, ignore_errors=True)
        elif old_folder != folder:
            recovery.release(old_folder)
        proj.add_recent(folder)
        self.project_changed.emit()
        self.model_changed.emit()

    def _close_images(self) -> None:
        for state in self.images:
            _close_quietly(state.stack)
        self.images = []
        self._slice_cache.clear()
        self.current_index = -1

    def discard_untitled(self) -> None:
        """Forget an untitled project (the person said so); its scratch folder is removed."""
        self.wait_for_writer()
        folder = self.project.folder
        if folder is not None and proj.is_untitled(folder):
            shutil.rmtree(folder, ignore_errors=True)
        for state in self.images:
            state.saved_version, state.forced_dirty = state.labels.version, False
        self._project_dirty = False
        self.project.folder = None
        self.discarded = True

    def close(self) -> None:
        """Stop the autosave timer, finish a background write and release the project and image files."""
        self._autosave.stop()
        self.wait_for_writer()
        self._release_folder()
        self._close_images()

    def _release_folder(self) -> None:
        """The project is closed cleanly: remove its lock (an untitled one with nothing in it goes)."""
        folder = self.project.folder
        if folder is None:
            return
        if self.is_untitled and not self.has_labels() and self.model_dir is None:
            shutil.rmtree(folder, ignore_errors=True)  # only an image list: nothing to recover
        else:
            recovery.release(folder)

    def ensure_folder(self) -> Path:
        """The project folder, creating an untitled one (autosaved scratch folder) when there is none."""
        if self.project.folder is None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            base = proj.untitled_projects_dir()
            folder, n = base / stamp, 2
            while folder.exists():
                folder, n = base / f"{stamp}-{n}", n + 1
            self.project.folder = folder
            proj.save_project(self.project)
            recovery.claim(folder)
            proj.add_recent(folder)
            self.project_changed.emit()
        return self.project.folder


def _close_quietly(stack) -> None:
    try:
        stack.close()
    except Exception:  # closing a file handle must never break the session
        log.debug("closing %s failed", stack, exc_info=True)
