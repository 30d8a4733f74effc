"""The imported instance images of a project's images, beside their labels (``labels/NAME_instances.tif``).

An object label image imported "as objects" (File > Import Labels) keeps its objects so that training separates
touching objects (see :mod:`unet_studio.core.labels.instances`); they are written and read here like the
accepted-prediction flags (:func:`~.folder.save_accepted`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..labels import instances_dtype
from .folder import save_or_remove

log = logging.getLogger(__name__)

__all__ = ["load_instances", "save_instances"]


def save_instances(path: str | os.PathLike, instances: np.ndarray | None) -> None:
    """Write the imported instance images (S, Y, X) of one image atomically, or remove the file when there are
    none (a project without instance imports has no such files)."""
    save_or_remove(path, instances)


def load_instances(path: str | os.PathLike, shape: tuple[int, int, int]) -> np.ndarray | None:
    """The instance images written by :func:`save_instances` as (S, Y, X), or None when there are none.

    A damaged or mismatched file is reported in the log and ignored (training then finds objects in the
    painted classes: the labels themselves are never lost over it).
    """
    import tifffile

    path = Path(path)
    if not path.is_file():
        return None
    try:
        objects = np.asarray(tifffile.imread(path))
    except Exception as exc:  # noqa: BLE001 - tifffile raises many types for damaged files
        log.warning("ignoring the imported instances %s: %s", path, exc)
        return None
    objects = objects[None] if objects.ndim == 2 else objects
    if objects.shape != tuple(shape) or objects.dtype.kind not in "ui":
        log.warning("ignoring the imported instances %s: %s %s values for an image of shape %s", path,
                    objects.shape, objects.dtype, tuple(shape))
        return None
    if not objects.any() or objects.min() < 0:
        return None
    return objects.astype(instances_dtype(int(objects.max())))
