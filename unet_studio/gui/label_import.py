"""Importing a label image into the current image: read it, map its values to classes, write it as one step.

A label image made elsewhere rarely uses the project's numbers (0 = unlabelled, k = class k): Fiji saves
binary masks as 0/255, object label images number each object. :func:`read_label_import` reads the file
and proposes a mapping (:func:`~unet_studio.core.labels.propose_mapping`); :func:`import_label_file` asks a
``chooser`` (the dialog of :mod:`.panels.import_labels_dialog`, or a test's function) when the values are
not already classes, then writes the mapped labels as one undo step. An object label image may instead be
imported as objects (:meth:`LabelImport.objects_mapping`): background and the project's object class, with the
instance image kept beside the labels (saved as ``labels/NAME_instances.tif``, undone with the import) so that
training separates touching objects as ``unet-studio train --instances`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..core.errors import UNetStudioError
from ..core.labels import (LabelMapping, ObjectClasses, distinct_values, instance_planes, label_image_kind,
                           label_planes, propose_mapping)

if TYPE_CHECKING:
    from .session import Session

__all__ = ["LabelImport", "describe_mapping", "import_label_file", "read_label_import"]

#: What the person is told a file looks like, by :func:`~unet_studio.core.labels.label_image_kind`.
KIND_TEXT = {
    "classes": "its values are classes of this project",
    "mask": "it looks like a binary mask",
    "levels": "it holds a few values",
    "instances": "it looks like an object label image (one number per object)",
}


@dataclass
class LabelImport:
    """A label image read for the current image, before its values are mapped to classes.

    Attributes
    ----------
    path : Path
        The file.
    planes : dict of int to numpy.ndarray
        ``{slice: (Y, X) file values}``.
    found : numpy.ndarray
        The sorted distinct values of the file.
    class_names : list of str
        Names of the project's classes (class k is ``class_names[k - 1]``).
    boundary : list of bool
        Which classes are boundary classes (painted between touching objects).
    """

    path: Path
    planes: dict[int, np.ndarray]
    found: np.ndarray
    class_names: list[str]
    boundary: list[bool] | None = None

    @property
    def kind(self) -> str:
        """``classes``, ``mask``, ``levels`` or ``instances`` (:func:`~unet_studio.core.labels.label_image_kind`)."""
        return label_image_kind(self.found, len(self.class_names))

    @property
    def has_zero(self) -> bool:
        return bool(self.found.size) and int(self.found[0]) == 0

    @property
    def nonzero(self) -> list[int]:
        return [int(v) for v in self.found if v != 0]

    def objects_mapping(self) -> LabelMapping:
        """The import as objects: 0 -> background, every object -> the object class, instances kept.

        Raises :class:`~unet_studio.core.errors.DataError` when the project has no object class.
        """
        roles = ObjectClasses.of(self.class_names, self.boundary or [False] * len(self.class_names))
        return LabelMapping({0: roles.background}, roles.objects, instances=True)

    def proposal(self, zero_is_background: bool | None = None) -> LabelMapping:
        """The proposed mapping (see :func:`~unet_studio.core.labels.propose_mapping`)."""
        return propose_mapping(self.found, len(self.class_names), zero_is_background)


def read_label_import(session: Session, path: str | Path) -> LabelImport:
    """Read a label image for the session's current image (its current slice, or every slice).

    Raises
    ------
    UNetStudioError
        No image is open, or the file cannot be read or does not fit the image (the message says why).
    """
    from ..core.io import read_labels

    state = session.current
    if state is None:
        raise UNetStudioError("open an image first, then import its labels")
    if getattr(state.stack, "is_big", False):  # a whole label plane of a big image would not fit in memory
        raise UNetStudioError(f"{state.name} is a big image (shown from its pyramid): importing a label image into "
                              "it is not supported yet; paint its labels, or train on the labels with "
                              "'unet-studio train' on crops of the image")
    path = Path(path)
    data = read_labels(path)
    planes = label_planes(data, state.labels.shape, session.current_slice, str(path), state.name)
    return LabelImport(path, planes, distinct_values(data), [c.name for c in session.classes],
                       [c.boundary for c in session.classes])


def describe_mapping(mapping: LabelMapping, request: LabelImport) -> str:
    """One line saying what the values of the file became, e.g. ``0 -> background, 255 -> foreground``."""
    names = ["unlabelled", *request.class_names]

    def name(value: int) -> str:
        return names[value] if 0 <= value < len(names) else f"class {value}"

    listed = [v for v in ([0] if request.has_zero else []) + request.nonzero if v in mapping.values]
    parts = [f"{v} -> {name(mapping.values[v])}" for v in listed[:6]]
    if len(listed) > 6:
        parts.append("...")
    if len(listed) < len(request.found):
        parts.append(f"other values -> {name(mapping.others)}")
    return ", ".join(parts)


def import_label_file(session: Session, path: str | Path,
                      chooser: Callable[[LabelImport], LabelMapping | None]) -> str | None:
    """Import a label image into the current image, asking ``chooser`` how to map values that are not classes.

    Returns
    -------
    str or None
        A line for the status bar, or None when the person cancelled (nothing changed).

    Raises
    ------
    UNetStudioError
        As :func:`read_label_import`; nothing changed.
    """
    request = read_label_import(session, path)
    mapping = request.proposal() if request.kind == "classes" else chooser(request)
    if mapping is None:
        return None
    objects = instance_planes(request.planes, f"'{request.path.name}'") if mapping.instances else None
    count = session.editing.import_planes(request.planes, mapping, objects)
    where = "this slice" if len(request.planes) == 1 else f"{len(request.planes)} slices"
    changed = "" if count else " (no label changed)"
    if objects is not None:
        found = sum(int(plane.max()) for plane in objects.values())
        return (f"Imported '{request.path.name}' into {where}{changed} as {found} objects: training separates "
                f"touching objects ({describe_mapping(mapping, request)}). Undo (Ctrl+Z) takes it back.")
    return (f"Imported '{request.path.name}' into {where}{changed}: {describe_mapping(mapping, request)}. "
            "Undo (Ctrl+Z) takes it back.")
