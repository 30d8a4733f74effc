"""The session's project files: open, claim, release and save a project folder; load an image with its labels.

Qt-free: :class:`ProjectFiles` holds the open :class:`~unet_studio.core.project.Project` and does every
file operation of the session; the :class:`~unet_studio.gui.session.Session` tells the views. An open
project folder is claimed (a lock file that names this process, see :mod:`unet_studio.core.project.recovery`),
so that a crash is detected at the next open; a project that was never saved by the person lives in an
autosaved scratch folder until it is saved somewhere or discarded.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core import project as proj
from ..core.errors import ImageReadError, UNetStudioError
from ..core.labels import (ChunkedLabelStore, ChunkedLabelVolume, ChunkPatch, LabelVolume, chunked_labels_path,
                           labels_dtype)
from .big_image.source import BIG_SLICE_BYTES, image_path, is_big, open_stack

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

    def has_labels(self) -> bool:
        if isinstance(self.labels, ChunkedLabelVolume):
            return self.labels.has_labels()  # a big image's labels are never scanned whole
        return bool(self.labels.data.any())

    def close(self) -> None:
        """Release the image file (and a big image's scratch labels: save first)."""
        close_quietly(self.stack)
        if isinstance(self.labels, ChunkedLabelVolume):
            self.labels.close()

    def labelled_slices(self) -> list[int]:
        if isinstance(self.labels, ChunkedLabelVolume):
            return self.labels.labelled_slices()
        data = self.labels.data
        return [int(s) for s in np.flatnonzero(data.reshape(data.shape[0], -1).any(axis=1))]


@dataclass
class SaveJob:
    """What one save writes, copied on the GUI thread: project.json's text and the changed labels."""

    folder: Path
    project_text: str
    labels: list[tuple[ImageState, int, Path, np.ndarray]]  # state, labels version, path, copy of the data
    accepted: list[tuple[Path, np.ndarray | None]] = field(default_factory=list)  # flags file, copy (None: none)
    instances: list[tuple[Path, np.ndarray | None]] = field(default_factory=list)  # imported objects, copy


def write_job(job: SaveJob) -> tuple[list[tuple[ImageState, int]], str]:
    """Write ``job`` (any thread); returns the (state, version) written and an error message ("" if none).

    Never raises: an unexpected failure is logged with its traceback and reported as a message, so that a
    writer thread never dies silently and the labels stay marked unsaved.
    """
    done: list[tuple[ImageState, int]] = []
    try:
        proj.write_project(job.folder, job.project_text)
        for index, (state, version, path, data) in enumerate(job.labels):
            if isinstance(data, ChunkPatch):
                data.write()  # a big image: only its changed chunks
            else:
                proj.save_labels(path, data)
            if index < len(job.accepted):  # after the labels: a flag never points at unsaved labels
                proj.save_accepted(*job.accepted[index])
            if index < len(job.instances):
                proj.save_instances(*job.instances[index])
            done.append((state, version))
    except (UNetStudioError, OSError) as exc:
        return done, str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug must reach the person, not kill the thread
        log.exception("saving %s failed", job.folder)
        return done, f"saving into {job.folder} failed unexpectedly ({type(exc).__name__}: {exc})"
    return done, ""


class ProjectFiles:
    """The open project and its folder (open, claim, release, save), without Qt."""

    def __init__(self) -> None:
        self.project = proj.Project()
        self.previous_session: proj.PreviousSession | None = None  # set by open (see core.project.recovery)
        self.discarded = False  # the person chose to drop this untitled project
        self.big_slice_bytes = BIG_SLICE_BYTES  # above: an OME-Zarr is shown from its pyramid (tests lower it)

    @property
    def folder(self) -> Path | None:
        return self.project.folder

    @property
    def is_untitled(self) -> bool:
        return proj.is_untitled(self.project.folder)

    # ------------------------------------------------------------------ folders

    @staticmethod
    def read(folder: Path) -> proj.Project:
        """The project of ``folder``, creating a new one when the folder is empty or absent."""
        if proj.is_project_folder(folder):
            return proj.load_project(folder)
        if folder.exists() and not folder.is_dir():
            raise proj.ProjectError(f"{folder} is a file, not a project folder; open a folder")
        if folder.exists() and any(folder.iterdir()):
            raise proj.ProjectError(f"{folder} is not a UNet Studio project folder and not empty")
        return proj.create_project(folder)

    def claim(self, project: proj.Project) -> None:
        """Make ``project`` (read by :meth:`read`) the open one and mark its folder as open by this process."""
        self.project = project
        self.discarded = False
        self.previous_session = proj.claim(project.folder)
        if not self.is_untitled:
            proj.add_recent(project.folder)

    def release(self, keep: bool) -> None:
        """The project is closed cleanly: remove its lock; an untitled one with nothing to ``keep`` goes."""
        folder = self.project.folder
        if folder is None:
            return
        if self.is_untitled and not keep:
            shutil.rmtree(folder, ignore_errors=True)  # only an image list: nothing to recover
        else:
            proj.release(folder)

    def ensure_folder(self) -> bool:
        """Give an untitled project a scratch folder (autosaved) when it has none; True when one was made."""
        if self.project.folder is not None:
            return False
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = proj.untitled_projects_dir()
        folder, n = base / stamp, 2
        while folder.exists():
            folder, n = base / f"{stamp}-{n}", n + 1
        self.project.folder = folder
        proj.save_project(self.project)
        proj.claim(folder)
        # Not in Open Recent: a scratch folder is no place the person chose (crash recovery finds it at start).
        return True

    def start_untitled(self) -> None:
        """Make a new, empty untitled project the open one (the previous one was released before)."""
        self.project = proj.Project()
        self.previous_session = None
        self.discarded = False

    def check_save_target(self, folder: Path) -> None:
        """Refuse a folder that holds another project's files (they would be replaced), saying which."""
        if folder == self.project.folder or not folder.exists():
            return
        if not folder.is_dir():
            raise proj.ProjectError(f"{folder} is a file; choose a folder to save the project in")
        found = proj.ProjectLayout(folder).existing_entries()
        if found:
            names = ", ".join(path.name + ("/" if path.is_dir() else "") for path in found)
            raise proj.ProjectError(f"{folder} already holds another project's files ({names}) that saving would "
                                    "replace; choose an empty folder, or a folder without them")

    def move_to(self, folder: Path) -> Path | None:
        """Point the project at ``folder`` (its model copied along); returns the old folder for :meth:`moved`."""
        self.check_save_target(folder)
        old_folder, old_model = self.project.folder, (self.project.model_dir if self.project.has_model() else None)
        self.project.folder = folder
        try:
            if old_model is not None and old_model.resolve() != self.project.model_dir.resolve():
                shutil.copytree(old_model, self.project.model_dir, dirs_exist_ok=True)
        except OSError as exc:
            self.project.folder = old_folder
            raise proj.ProjectError(f"cannot copy the model into {folder} ({exc.strerror or exc}); choose "
                                    "another folder") from None
        return old_folder

    def moved(self, old_folder: Path | None) -> None:
        """The project was saved in its new folder: claim it, and let the old one go."""
        folder = self.project.folder
        proj.claim(folder)
        if old_folder is not None and proj.is_untitled(old_folder) and old_folder != folder:
            shutil.rmtree(old_folder, ignore_errors=True)
        elif old_folder != folder:
            proj.release(old_folder)
        proj.add_recent(folder)

    def discard(self) -> None:
        """Forget an untitled project (the person said so); its scratch folder is removed."""
        folder = self.project.folder
        if folder is not None and proj.is_untitled(folder):
            shutil.rmtree(folder, ignore_errors=True)
        self.project.folder = None
        self.discarded = True

    def snapshot(self, states: list[ImageState]) -> SaveJob:
        """A :class:`SaveJob` of project.json and the changed labels (copies: the caller may go on editing)."""
        self.ensure_folder()
        dirty = [state for state in states if state.dirty]
        jobs = [(state, state.labels.version, self.project.labels_path(state.name), self._labels_copy(state))
                for state in dirty]
        flags = [(self.project.accepted_path(state.name),
                  None if state.labels.accepted is None else state.labels.accepted.copy()) for state in dirty]
        objects = [(self.project.layout.instances_path(state.name),
                    None if state.labels.instances is None else state.labels.instances.copy()) for state in dirty]
        return SaveJob(self.project.folder, proj.project_text(self.project), jobs, flags, objects)

    def _labels_copy(self, state: ImageState):
        """A copy of the labels to write: the array, or a big image's changed chunks (a :class:`ChunkPatch`)."""
        if not isinstance(state.labels, ChunkedLabelVolume):
            return state.labels.data.copy()
        store = ChunkedLabelStore(chunked_labels_path(self.project.labels_path(state.name)), state.labels.shape)
        return state.labels.patch(store, everything=state.forced_dirty)

    # ------------------------------------------------------------------ images

    def add_image(self, path: Path) -> ImageState:
        """Open the image ``path`` as a new entry of the project (not yet in ``project.images``: see :meth:`adopt`).

        Its name is unique; the same image removed before gets its name, and so its labels, back.
        """
        path = image_path(path)  # an OME-Zarr's metadata file stands for its folder
        stack = open_stack(path, self.big_slice_bytes)
        try:
            if not is_big(stack):
                _require_memory(path, stack)  # before the fingerprint reads pixels
            digest = _fingerprint(stack)
            entry = proj.ImageEntry(path=path, name=self.project.unique_name(path, digest), fingerprint=digest)
        except BaseException:
            close_quietly(stack)
            raise
        return self.load_state(entry, stack, digest)

    def adopt(self, state: ImageState) -> None:
        """Add the entry of ``state`` (from :meth:`add_image`) to the project."""
        self.project.retired = [e for e in self.project.retired if e.name.casefold() != state.name.casefold()]
        self.project.images.append(state.entry)

    def load_state(self, entry: proj.ImageEntry, stack=None, digest: str | None = None) -> ImageState:
        """Open ``entry``'s image (unless ``stack`` is given) and its labels, refusing labels of another image."""
        if stack is None:
            if not entry.path.exists():
                raise UNetStudioError(f"the image {entry.path} does not exist (moved or deleted?)")
            stack = open_stack(entry.path, self.big_slice_bytes)
        if is_big(stack):
            return self._big_state(entry, stack, digest)
        try:
            shape = _require_memory(entry.path, stack)
            labels = self._read_labels(entry, shape, digest or proj.fingerprint(stack))
        except BaseException:
            close_quietly(stack)
            raise
        n_classes = len(self.project.classes)
        volume = LabelVolume(shape=shape, dtype=labels_dtype(n_classes)) if labels is None else LabelVolume(data=labels)
        if labels is not None and self.project.folder is not None:
            # Accepted predictions stay out of validation after a reopen too.
            volume.accepted = proj.load_accepted(self.project.accepted_path(entry.name), shape)
            volume.instances = proj.load_instances(self.project.layout.instances_path(entry.name), shape)
        return ImageState(entry=entry, stack=stack, labels=volume, saved_version=volume.version)

    def _big_state(self, entry: proj.ImageEntry, stack, digest: str | None) -> ImageState:
        """A big image's state: its labels in a chunked store (``labels/NAME_labels.ome.zarr``), read by chunk."""
        shape = (stack.shape[0], stack.shape[2], stack.shape[3])
        try:
            digest = digest or _fingerprint(stack)
            store = None
            if self.project.folder is not None:
                store = ChunkedLabelStore(chunked_labels_path(self.project.labels_path(entry.name)), shape)
                if store.exists() and entry.fingerprint is not None and entry.fingerprint != digest:
                    raise ImageReadError(f"the image {entry.path} is not the image its labels {store.path.name} were "
                                         "painted on: the labels are not shown on it. Put the original image back, or "
                                         "move the labels folder away to start this image's labels again")
            volume = ChunkedLabelVolume(shape, store)
        except BaseException:
            close_quietly(stack)
            raise
        entry.shape, entry.fingerprint = shape, digest
        return ImageState(entry=entry, stack=stack, labels=volume, saved_version=volume.version)

    def _read_labels(self, entry: proj.ImageEntry, shape, digest: str) -> np.ndarray | None:
        path = self.project.labels_path(entry.name) if self.project.folder is not None else None
        if path is None or not path.is_file():
            entry.shape, entry.fingerprint = shape, digest
            return None
        if entry.fingerprint is not None and entry.fingerprint != digest:
            raise ImageReadError(
                f"the image {entry.path} is not the image its labels {path.name} were painted on (its pixels "
                "changed since): the labels are not shown on it. Put the original image back, or move the labels "
                "file away to start this image's labels again")
        labels = proj.load_labels(path, shape, len(self.project.classes))
        entry.shape, entry.fingerprint = shape, digest
        return labels


def _fingerprint(stack) -> str:
    """The image's fingerprint; a big image hashes its coarsest level (a whole slice is never read)."""
    return stack.fingerprint() if is_big(stack) else proj.fingerprint(stack)


def _require_memory(path: Path, stack) -> tuple[int, int, int]:
    """Refuse an image whose labels and display copies do not fit in memory; returns the labels' shape."""
    from ..core.io import require_memory

    n_slices, channels, height, width = stack.shape
    # Labels of the whole stack, a few raw slices and the display's copies of one slice live in memory.
    needed = n_slices * height * width + 2 * stack.slice_nbytes + height * width * (4 * channels + 16)
    require_memory(path, needed, stack.describe_size(whole=True), "opening")
    return n_slices, height, width


def close_quietly(stack) -> None:
    """Close an image stack; a failure is logged, never raised (closing must not break the session)."""
    try:
        stack.close()
    except Exception:  # noqa: BLE001
        log.debug("closing %s failed", stack, exc_info=True)
