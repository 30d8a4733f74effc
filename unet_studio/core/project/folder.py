"""The project folder: images (or references to them), painted labels, classes, models and settings.

Layout::

    PROJECT/
      project.json                 format version, images, classes, settings
      labels/NAME_labels.tif       painted labels of image NAME: (Y, X) or (S, Y, X), 0 = unlabelled,
                                   k = class k (1-based, in the order of project.json's classes)
      models/current/              the model folder of the project (see core.checkpoint)

Image paths are stored relative to the project folder when the image lies inside it, absolute
otherwise, so that a project folder that holds its images can be moved as a whole. Every file is
written atomically (temporary file + ``os.replace``): a crash leaves the previous version or the new
one, never half a file. Qt-free: the application and tests use the same functions.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic as atomic
from ..errors import ImageReadError, UNetStudioError

log = logging.getLogger(__name__)

FORMAT_NAME = "unet-studio-project"
FORMAT_VERSION = 1
PROJECT_FILE = "project.json"
LABELS_DIR = "labels"
MODEL_DIR = Path("models") / "current"
RECENT_FILE = "recent_projects.json"
RECENT_LIMIT = 10

DEFAULT_COLORS = (
    "#3b75af", "#e8542a", "#45b649", "#f4c430", "#a05ac8", "#1fb5b5", "#e377c2", "#8c564b", "#bcbd22",
)


class ProjectError(UNetStudioError):
    """A project folder cannot be read or written."""


@dataclass
class ClassInfo:
    """One class of the project: painted with value ``index + 1``."""

    name: str
    color: str  # "#rrggbb"

    def rgb(self) -> tuple[int, int, int]:
        text = self.color.lstrip("#")
        return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def default_classes() -> list[ClassInfo]:
    return [ClassInfo("background", DEFAULT_COLORS[0]), ClassInfo("foreground", DEFAULT_COLORS[1])]


def next_color(used: list[str]) -> str:
    for color in DEFAULT_COLORS:
        if color not in used:
            return color
    return DEFAULT_COLORS[len(used) % len(DEFAULT_COLORS)]


@dataclass
class ImageEntry:
    """An image of the project; ``name`` is unique in the project and names its label file."""

    path: Path  # absolute
    name: str


@dataclass
class Project:
    """What ``project.json`` holds. ``folder`` is None for a project not yet saved anywhere."""

    folder: Path | None = None
    images: list[ImageEntry] = field(default_factory=list)
    classes: list[ClassInfo] = field(default_factory=default_classes)
    settings: dict[str, Any] = field(default_factory=dict)

    # -- paths ---------------------------------------------------------------------------------
    def _require_folder(self) -> Path:
        if self.folder is None:
            raise ProjectError("the project has no folder yet; save it in a folder first")
        return self.folder

    @property
    def model_dir(self) -> Path:
        return self._require_folder() / MODEL_DIR

    def labels_path(self, name: str) -> Path:
        return self._require_folder() / LABELS_DIR / f"{name}_labels.tif"

    def has_model(self) -> bool:
        return self.folder is not None and (self.model_dir / "model.json").is_file()

    # -- images --------------------------------------------------------------------------------
    def unique_name(self, path: Path) -> str:
        base = re.sub(r"[^\w.-]+", "_", path.stem).strip("_") or "image"
        # Strip a second suffix like .ome of NAME.ome.tif
        if base.lower().endswith(".ome"):
            base = base[:-4]
        taken = {entry.name for entry in self.images}
        name, n = base, 2
        while name in taken:
            name, n = f"{base}_{n}", n + 1
        return name

    def add_image(self, path: str | os.PathLike) -> ImageEntry:
        """Add ``path`` (or return its existing entry)."""
        path = Path(path).resolve()
        for entry in self.images:
            if entry.path == path:
                return entry
        entry = ImageEntry(path=path, name=self.unique_name(path))
        self.images.append(entry)
        return entry

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        images = []
        for entry in self.images:
            stored: str = str(entry.path)
            if self.folder is not None:
                try:
                    stored = entry.path.relative_to(self.folder.resolve()).as_posix()
                except ValueError:
                    pass
            images.append({"name": entry.name, "path": stored})
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "images": images,
            "classes": [{"name": c.name, "color": c.color} for c in self.classes],
            "settings": self.settings,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], folder: Path) -> "Project":
        where = folder / PROJECT_FILE
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise ProjectError(f"{where} is not a UNet Studio project file")
        version = data.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise ProjectError(
                f"{where} was written by a newer UNet Studio (project format {version}, this version reads "
                f"up to {FORMAT_VERSION}); upgrade UNet Studio to open it"
            )
        try:
            images = []
            for item in data.get("images", []):
                path = Path(item["path"])
                if not path.is_absolute():
                    path = folder / path
                images.append(ImageEntry(path=path.resolve(), name=str(item["name"])))
            classes = [ClassInfo(str(c["name"]), str(c["color"])) for c in data.get("classes", [])]
            settings = dict(data.get("settings") or {})
        except (KeyError, TypeError, ValueError) as exc:
            raise ProjectError(f"{where} is incomplete or damaged ({exc})") from None
        return cls(folder=folder, images=images, classes=classes or default_classes(), settings=settings)


def is_project_folder(folder: str | os.PathLike) -> bool:
    return (Path(folder) / PROJECT_FILE).is_file()


def create_project(folder: str | os.PathLike) -> Project:
    """A new, empty project in ``folder`` (created if needed), saved at once."""
    folder = Path(folder).resolve()
    if is_project_folder(folder):
        raise ProjectError(f"{folder} already holds a project; open it instead")
    project = Project(folder=folder)
    save_project(project)
    return project


def load_project(folder: str | os.PathLike) -> Project:
    """Read ``folder/project.json``; raises :class:`ProjectError` saying what is wrong."""
    folder = Path(folder).resolve()
    path = folder / PROJECT_FILE
    if not path.is_file():
        raise ProjectError(f"{folder} is not a UNet Studio project folder ({PROJECT_FILE} is missing)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProjectError(f"{path} cannot be read ({exc}); the project file is damaged") from None
    return Project.from_dict(data, folder)


def save_project(project: Project) -> None:
    """Write ``project.json`` atomically (creating the folder and its labels/ folder)."""
    folder = project._require_folder()
    try:
        (folder / LABELS_DIR).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProjectError(f"cannot create the project folder {folder}: {exc.strerror or exc}") from None
    atomic.write_text(folder / PROJECT_FILE, json.dumps(project.to_dict(), indent=2))


def save_labels(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write a label array (S, Y, X) atomically as a TIFF Fiji and napari open; one slice is written as (Y, X)."""
    from ..io.stack import write_labels

    path = Path(path)
    data = np.asarray(labels)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProjectError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    write_labels(path, data)


def load_labels(path: str | os.PathLike, shape: tuple[int, int, int], n_classes: int | None = None) -> np.ndarray:
    """Read a label file written by :func:`save_labels` as (S, Y, X) uint8 of ``shape``.

    Raises :class:`ImageReadError` when the file is unreadable or does not fit the image; values above
    ``n_classes`` are refused so that a damaged file is never silently used.
    """
    import tifffile

    path = Path(path)
    try:
        data = np.asarray(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many types for damaged files
        raise ImageReadError(f"cannot read the labels {path} ({' '.join(str(exc).split())[:200]}): the file is "
                             "damaged; restore it from a backup, or move it away to start this image's labels "
                             "again") from None
    if data.ndim == 2:
        data = data[None]
    if data.shape != tuple(shape):
        raise ImageReadError(
            f"the labels {path} have shape {data.shape} but the image has {tuple(shape)}: they belong to "
            "another image (was the image file replaced?); put the right image back, or move the label file "
            "away to start this image's labels again"
        )
    if data.size and (data.min() < 0 or (n_classes is not None and data.max() > n_classes)):
        raise ImageReadError(
            f"the labels {path} hold values up to {data.max()} but the project has {n_classes} classes; add "
            f"classes (Classes panel) until there are {data.max()} and open the project again"
        )
    return data.astype(np.uint8, copy=False)


# -- recent projects ---------------------------------------------------------------------------

def user_config_dir() -> Path:
    """$UNET_STUDIO_CONFIG_DIR, else $XDG_CONFIG_HOME/unet-studio, else ~/.config/unet-studio."""
    env = os.environ.get("UNET_STUDIO_CONFIG_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or (Path.home() / ".config")
    return Path(base) / "unet-studio"


def untitled_projects_dir() -> Path:
    """Where projects not yet saved by the person live (autosaved, so that nothing is lost)."""
    env = os.environ.get("UNET_STUDIO_CONFIG_DIR")
    if env:
        return Path(env) / "untitled"
    base = os.environ.get("XDG_DATA_HOME") or (Path.home() / ".local" / "share")
    return Path(base) / "unet-studio" / "untitled"


def is_untitled(folder: Path | None) -> bool:
    if folder is None:
        return True
    return Path(folder).resolve().parent == untitled_projects_dir().resolve()


def load_recent(config_dir: str | os.PathLike | None = None) -> list[Path]:
    """Recent project folders, newest first (those that no longer exist are dropped)."""
    path = Path(config_dir or user_config_dir()) / RECENT_FILE
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
        folders = [Path(item) for item in items if isinstance(item, str)]
    except (OSError, ValueError):
        return []
    return [folder for folder in folders if is_project_folder(folder)]


def add_recent(folder: str | os.PathLike, config_dir: str | os.PathLike | None = None) -> list[Path]:
    """Put ``folder`` first in the recent list; a failure to write it is logged, never raised."""
    config_dir = Path(config_dir or user_config_dir())
    folder = Path(folder).resolve()
    folders = [folder] + [f for f in load_recent(config_dir) if f != folder]
    folders = folders[:RECENT_LIMIT]
    try:
        config_dir.mkdir(parents=True, exist_ok=True)
        atomic.write_text(config_dir / RECENT_FILE, json.dumps([str(f) for f in folders], indent=2))
    except (OSError, UNetStudioError) as exc:
        log.warning("cannot update the recent projects list: %s", exc)
    return folders
