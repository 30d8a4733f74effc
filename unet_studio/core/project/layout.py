"""Every path of a project folder, named once, and the check that a path the project writes stays inside it.

Layout::

    PROJECT/
      project.json                 format version, images, classes, settings
      .unet-studio.lock            which process has the project open (see :mod:`.recovery`)
      labels/NAME_labels.tif       painted labels of image NAME: (Y, X) or (S, Y, X), 0 = unlabelled,
                                   k = class k (1-based, in the order of project.json's classes)
      labels/NAME_accepted.tif     which labelled pixels came from "Accept prediction" untouched (0/1, same
                                   shape; absent when none): never used to validate a model
      labels/NAME_instances.tif    imported object label images (one number per object, 0 elsewhere; same
                                   shape; absent when none): the objects training separates
      models/current/              the model folder of the project (see core.model)
      models/previous/             the model a from-scratch training run replaced (File > Restore Previous Model)

``NAME`` comes from ``project.json``, which anybody can edit: :meth:`ProjectLayout.labels_path` accepts
only a plain file-name component and checks that the result lies inside the folder, so an entry named
``../../victim/evil`` can never make a save write elsewhere.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import UNetStudioError

PROJECT_FILE = "project.json"
LOCK_FILE = ".unet-studio.lock"
LABELS_DIR = "labels"
LABELS_SUFFIX = "_labels.tif"
ACCEPTED_SUFFIX = "_accepted.tif"
INSTANCES_SUFFIX = "_instances.tif"
MODEL_DIR = Path("models") / "current"
PREVIOUS_MODEL_DIR = Path("models") / "previous"
#: Where atomic writes put their temporary files (``.NAME.RANDOM.tmp.SUFFIX``), relative to the folder.
TEMP_PLACES = (Path("."), Path(LABELS_DIR), MODEL_DIR)
#: The entries whose presence says that a folder holds (part of) a project.
PROJECT_ENTRIES = (PROJECT_FILE, LABELS_DIR, "models", LOCK_FILE)

#: An image name usable as a file-name component: letters, digits, ``_``, ``-``, ``.``, starting with a
#: letter, digit or ``_`` (so never ``..`` nor a hidden file), short enough for the suffixes added to it.
_NAME = re.compile(r"\w[\w\-.]{0,159}")


class ProjectError(UNetStudioError):
    """A project folder cannot be read or written."""


def is_valid_name(name: object) -> bool:
    """Whether ``name`` can name an image's labels file (a plain, portable file-name component)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def safe_name(text: str) -> str:
    """A valid image name made from ``text`` (other characters become ``_``); ``"image"`` when none is left."""
    name = re.sub(r"[^\w.\-]+", "_", str(text)).strip("_.-")[:120]
    return name if is_valid_name(name) else "image"


@dataclass(frozen=True)
class ProjectLayout:
    """The paths of the project folder ``folder`` (absolute)."""

    folder: Path

    @property
    def project_file(self) -> Path:
        return self.folder / PROJECT_FILE

    @property
    def lock_file(self) -> Path:
        return self.folder / LOCK_FILE

    @property
    def labels_dir(self) -> Path:
        return self.folder / LABELS_DIR

    @property
    def model_dir(self) -> Path:
        return self.folder / MODEL_DIR

    @property
    def previous_model_dir(self) -> Path:
        return self.folder / PREVIOUS_MODEL_DIR

    def labels_path(self, name: str) -> Path:
        """``labels/NAME_labels.tif``; raises :class:`ProjectError` for a name that could leave the folder."""
        if not is_valid_name(name):
            raise ProjectError(f"the image name {name!r} in {self.project_file} cannot name a labels file; "
                               "rename the image in project.json (letters, digits, '_', '-', '.')")
        return self.inside(self.labels_dir / f"{name}{LABELS_SUFFIX}")

    def accepted_path(self, name: str) -> Path:
        """``labels/NAME_accepted.tif``: the accepted-prediction flags of image NAME (see :meth:`labels_path`)."""
        labels = self.labels_path(name)
        return self.inside(labels.with_name(labels.name[: -len(LABELS_SUFFIX)] + ACCEPTED_SUFFIX))

    def instances_path(self, name: str) -> Path:
        """``labels/NAME_instances.tif``: the imported instance images of image NAME (see :meth:`labels_path`)."""
        labels = self.labels_path(name)
        return self.inside(labels.with_name(labels.name[: -len(LABELS_SUFFIX)] + INSTANCES_SUFFIX))

    def labels_files(self) -> list[Path]:
        """The labels files present in ``labels/``."""
        return sorted(self.labels_dir.glob(f"*{LABELS_SUFFIX}"))

    def temp_places(self) -> list[Path]:
        return [self.folder / place for place in TEMP_PLACES]

    def inside(self, path: str | os.PathLike) -> Path:
        """``path`` when it lies inside the folder (symbolic links resolved), else :class:`ProjectError`."""
        path = Path(path)
        root = self.folder.resolve()
        resolved = path.resolve()
        if resolved != root and root not in resolved.parents:
            raise ProjectError(f"refusing to write {path}: it lies outside the project folder {self.folder}")
        return path

    def existing_entries(self) -> list[Path]:
        """The project entries (project.json, labels/, models/, the lock) that exist in the folder."""
        return [self.folder / name for name in PROJECT_ENTRIES if (self.folder / name).exists()]
