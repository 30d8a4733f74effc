"""The project folder's content: ``project.json`` (images, classes, settings) and the painted labels files.

Paths are named in :mod:`.layout`, values checked by :mod:`.schema`. Image paths are stored relative to
the project folder when the image lies inside it, absolute otherwise, so that a project folder that holds
its images can be moved as a whole. Each image entry records the shape and a fingerprint of the pixels
its labels were painted on: labels are never shown on another image (a replaced file, or a different
image added under the name of a removed one). Every file is written atomically (temporary file +
``os.replace``): a crash leaves the previous version or the new one, never half a file. Qt-free.
"""

from __future__ import annotations

import logging

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageReadError
from ..io import write_labels, write_text
from ..labels import labels_dtype
from .layout import (LABELS_SUFFIX, PROJECT_FILE, ProjectError, ProjectLayout, is_valid_name,
                     safe_name)
from .schema import clean_classes, clean_pixel_size, clean_settings

FORMAT_NAME = "unet-studio-project"
FORMAT_VERSION = 1

DEFAULT_COLORS = (
    "#3b75af", "#e8542a", "#45b649", "#f4c430", "#a05ac8", "#1fb5b5", "#e377c2", "#8c564b", "#bcbd22",
)

log = logging.getLogger(__name__)

__all__ = ["ClassInfo", "ImageEntry", "Project", "ProjectError", "create_project", "fingerprint", "is_project_folder",
           "load_accepted", "load_labels", "load_project", "save_accepted", "save_labels", "save_project",
           "write_project"]


@dataclass
class ClassInfo:
    """One class of the project: painted with value ``index + 1``."""

    name: str
    color: str  # "#rrggbb"
    #: Painted between touching objects: trained as background, it separates them (see core.labels.instances).
    boundary: bool = False

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
    """An image of the project; ``name`` is unique in the project (ignoring case) and names its labels file.

    ``shape`` ``(S, Y, X)`` and ``fingerprint`` (see :func:`fingerprint`) describe the pixels the labels
    were painted on; None until the image is first opened. ``pixel_size`` ``(y, x)`` in ``unit`` is the
    calibration the person set for an image whose file has none (None: not set).
    """

    path: Path  # absolute
    name: str
    shape: tuple[int, int, int] | None = None
    fingerprint: str | None = None
    pixel_size: tuple[float, float] | None = None
    unit: str = ""


def fingerprint(stack) -> str:
    """A short hash of an image's pixels (first and last slice, shape and dtype), not of its file bytes.

    Re-saving an image in another format or compression keeps its fingerprint; another image gets another.
    """
    digest = hashlib.blake2b(digest_size=12)
    digest.update(repr((tuple(stack.shape), str(np.dtype(stack.dtype)))).encode())
    for index in sorted({0, stack.shape[0] - 1}):
        digest.update(np.ascontiguousarray(stack.get_slice(index)).tobytes())
    return digest.hexdigest()


@dataclass
class Project:
    """What ``project.json`` holds. ``folder`` is None for a project not yet saved anywhere.

    ``retired`` lists removed images whose labels files stay in the folder: their names are not given to
    another image, and the same image added again gets its labels back. ``notices`` says what
    :func:`load_project` ignored in the file (for the person).
    """

    folder: Path | None = None
    images: list[ImageEntry] = field(default_factory=list)
    classes: list[ClassInfo] = field(default_factory=default_classes)
    settings: dict[str, Any] = field(default_factory=dict)
    retired: list[ImageEntry] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)

    # -- paths ---------------------------------------------------------------------------------
    @property
    def layout(self) -> ProjectLayout:
        if self.folder is None:
            raise ProjectError("the project has no folder yet; save it in a folder first")
        return ProjectLayout(self.folder)

    @property
    def model_dir(self) -> Path:
        return self.layout.model_dir

    def labels_path(self, name: str) -> Path:
        return self.layout.labels_path(name)

    def accepted_path(self, name: str) -> Path:
        return self.layout.accepted_path(name)

    def has_model(self) -> bool:
        return self.folder is not None and (self.model_dir / "model.json").is_file()

    # -- images --------------------------------------------------------------------------------
    def unique_name(self, path: Path, digest: str | None = None) -> str:
        """A name for the image ``path`` that no other image, removed image or labels file uses.

        An image whose fingerprint ``digest`` is that of a removed image gets the removed image's name
        back (and with it its labels).
        """
        if digest is not None:
            for entry in self.retired:
                if entry.fingerprint == digest and entry.name.casefold() not in self._names(retired=False):
                    return entry.name
        stem = Path(path).stem
        base = safe_name(stem[:-4] if stem.lower().endswith(".ome") else stem)  # NAME.ome.tif
        taken = self._names()
        name, n = base, 2
        while name.casefold() in taken:  # casefold: A.tif and a.tif must not share a file on macOS
            name, n = f"{base}_{n}", n + 1
        return name

    def _names(self, retired: bool = True) -> set[str]:
        names = {entry.name.casefold() for entry in self.images}
        if retired:
            names |= {entry.name.casefold() for entry in self.retired}
            if self.folder is not None:  # labels files of images no entry names (removed by hand, older versions)
                names |= {path.name[: -len(LABELS_SUFFIX)].casefold() for path in self.layout.labels_files()}
        return names

    def add_image(self, path: str | os.PathLike, digest: str | None = None) -> ImageEntry:
        """Add ``path`` (or return its existing entry)."""
        path = Path(path).resolve()
        for entry in self.images:
            if entry.path == path:
                return entry
        entry = ImageEntry(path=path, name=self.unique_name(path, digest), fingerprint=digest)
        self.retired = [e for e in self.retired if e.name.casefold() != entry.name.casefold()]
        self.images.append(entry)
        return entry

    def remove_image(self, entry: ImageEntry) -> None:
        """Drop ``entry``; its name is retired (its labels file, if any, stays for when it comes back)."""
        self.images.remove(entry)
        self.retired.append(entry)

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "images": [self._entry_dict(entry) for entry in self.images],
            "removed_images": [self._entry_dict(entry) for entry in self.retired],
            "classes": [{"name": c.name, "color": c.color, **({"boundary": True} if c.boundary else {})}
                        for c in self.classes],
            "settings": self.settings,
        }

    def _entry_dict(self, entry: ImageEntry) -> dict[str, Any]:
        stored: str = str(entry.path)
        if self.folder is not None:
            try:
                stored = entry.path.relative_to(self.folder.resolve()).as_posix()
            except ValueError:
                pass
        item: dict[str, Any] = {"name": entry.name, "path": stored}
        if entry.shape is not None:
            item["shape"] = list(entry.shape)
        if entry.fingerprint is not None:
            item["fingerprint"] = entry.fingerprint
        if entry.pixel_size is not None:
            item["pixel_size"], item["unit"] = list(entry.pixel_size), entry.unit
        return item

    @classmethod
    def from_dict(cls, data: dict[str, Any], folder: Path) -> "Project":
        where = folder / PROJECT_FILE
        if not isinstance(data, dict) or data.get("format") != FORMAT_NAME:
            raise ProjectError(f"{where} is not a UNet Studio project file")
        version = data.get("format_version")
        if not isinstance(version, int) or isinstance(version, bool) or version > FORMAT_VERSION:
            raise ProjectError(
                f"{where} was written by a newer UNet Studio (project format {version}, this version reads "
                f"up to {FORMAT_VERSION}); upgrade UNet Studio to open it"
            )
        project = cls(folder=folder)
        project.settings, project.notices = clean_settings(data.get("settings") or {})
        classes, notices = clean_classes(data.get("classes", []), DEFAULT_COLORS)
        raw = data.get("classes") if classes and isinstance(data.get("classes"), list) else []
        project.classes = [ClassInfo(name, color, isinstance(item, dict) and item.get("boundary") is True)
                           for (name, color), item in zip(classes, raw)] or default_classes()
        project.notices += notices
        for key, target in (("images", project.images), ("removed_images", project.retired)):
            items = data.get(key, [])
            if not isinstance(items, list):
                raise ProjectError(f"{where} is incomplete or damaged ('{key}' is not a list)")
            for index, item in enumerate(items):
                target.append(project._read_entry(item, f"{key}[{index}]"))
        return project

    def _read_entry(self, item: Any, key: str) -> ImageEntry:
        """One image entry of project.json; a bad name is replaced (and said), a missing path is an error."""
        where = self.folder / PROJECT_FILE
        path = item.get("path") if isinstance(item, dict) else None
        if not isinstance(path, str) or not path or "\0" in path:
            raise ProjectError(f"{where} is incomplete or damaged ({key} has no valid 'path')")
        path = Path(path) if Path(path).is_absolute() else self.folder / path
        name = item.get("name")
        if not is_valid_name(name) or name.casefold() in self._names(retired=False) | {
                e.name.casefold() for e in self.retired}:
            given = name
            name = self.unique_name(Path(safe_name(str(name)) + ".tif"))
            self.notices.append(f"{key}.name: {given!r} cannot name a labels file of its own; renamed to "
                                f"'{name}'")
        shape, digest = item.get("shape"), item.get("fingerprint")
        if not (isinstance(shape, list) and len(shape) == 3 and all(type(n) is int and n > 0 for n in shape)):
            shape = None
        if not (isinstance(digest, str) and len(digest) <= 64):
            digest = None
        entry = ImageEntry(path=path.resolve(), name=name, shape=tuple(shape) if shape else None,
                           fingerprint=digest)
        if item.get("pixel_size") is not None:  # older files have none: uncalibrated
            try:
                entry.pixel_size, entry.unit = clean_pixel_size(item["pixel_size"], item.get("unit"))
            except ValueError as exc:
                self.notices.append(f"{key}.pixel_size: {exc} (ignored)")
        return entry


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
    """Read ``folder/project.json``; raises :class:`ProjectError` saying what is wrong.

    Values that break the schema (:mod:`.schema`) are dropped and listed in ``Project.notices``.
    """
    folder = Path(folder).resolve()
    path = folder / PROJECT_FILE
    if not path.is_file():
        raise ProjectError(f"{folder} is not a UNet Studio project folder ({PROJECT_FILE} is missing)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ProjectError(f"{path} cannot be read ({str(exc)[:200]}); the project file is damaged") from None
    return Project.from_dict(data, folder)


def project_text(project: Project) -> str:
    """``project.json``'s text for ``project`` (built on the caller's thread, written by :func:`write_project`)."""
    return json.dumps(project.to_dict(), indent=2)


def write_project(folder: Path, text: str) -> None:
    """Write ``text`` as ``folder/project.json`` atomically, creating the folder and its labels/ folder."""
    layout = ProjectLayout(folder)
    try:
        layout.labels_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProjectError(f"cannot create the project folder {folder}: {exc.strerror or exc}") from None
    write_text(layout.project_file, text)


def save_project(project: Project) -> None:
    """Write ``project.json`` atomically (creating the folder and its labels/ folder)."""
    write_project(project.layout.folder, project_text(project))


def save_labels(path: str | os.PathLike, labels: np.ndarray) -> None:
    """Write a label array (S, Y, X) atomically as a TIFF Fiji and napari open; one slice is written as (Y, X)."""
    path = Path(path)
    data = np.asarray(labels)
    if data.ndim == 3 and data.shape[0] == 1:
        data = data[0]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProjectError(f"cannot create {path.parent}: {exc.strerror or exc}") from None
    write_labels(path, data)


def save_or_remove(path: str | os.PathLike, data: np.ndarray | None) -> None:
    """Write ``data`` (S, Y, X) atomically as :func:`save_labels` does, or remove the file when it holds no
    nonzero pixel (so that a project without such data has no such files)."""
    path = Path(path)
    if data is None or not data.any():
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise ProjectError(f"cannot remove {path}: {exc.strerror or exc}") from None
        return
    save_labels(path, data)


def save_accepted(path: str | os.PathLike, flags: np.ndarray | None) -> None:
    """Write the accepted-prediction flags (S, Y, X) of one image atomically as 0/1, or remove the file when
    no pixel is flagged."""
    save_or_remove(path, None if flags is None else np.asarray(flags, dtype=np.uint8))


def load_accepted(path: str | os.PathLike, shape: tuple[int, int, int]) -> np.ndarray | None:
    """The flags written by :func:`save_accepted` as (S, Y, X) booleans, or None when there are none.

    A damaged or mismatched file is reported in the log and ignored (its pixels then count as painted:
    the labels themselves are never lost over it).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        flags = load_labels(path, shape, 1)
    except ImageReadError as exc:
        log.warning("ignoring the accepted-prediction flags %s: %s", path, exc)
        return None
    return flags.astype(bool) if flags.any() else None


def load_labels(path: str | os.PathLike, shape: tuple[int, int, int], n_classes: int | None = None) -> np.ndarray:
    """Read a label file written by :func:`save_labels` as (S, Y, X) of ``shape``.

    The dtype is the smallest that holds the values and ``n_classes`` (uint8, else uint16): a value is
    never wrapped. Raises :class:`ImageReadError` when the file is unreadable or does not fit the image;
    values above ``n_classes`` are refused so that a damaged file is never silently used.
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
    if not np.issubdtype(data.dtype, np.integer):
        raise ImageReadError(f"the labels {path} hold {data.dtype} values, not whole numbers: the file is not a "
                             "labels file; move it away to start this image's labels again")
    top = int(data.max()) if data.size else 0
    if data.size and (data.min() < 0 or (n_classes is not None and top > n_classes)):
        raise ImageReadError(
            f"the labels {path} hold values up to {top} but the project has {n_classes} classes; add "
            f"classes (Classes panel) until there are {top} and open the project again"
        )
    try:
        dtype = labels_dtype(max(top, n_classes or 0))
    except ValueError:
        raise ImageReadError(f"the labels {path} hold values up to {top}, more classes than a project can have; "
                             "move the file away to start this image's labels again") from None
    return data.astype(dtype, copy=False)
