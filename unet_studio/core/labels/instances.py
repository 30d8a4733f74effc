"""Objects in painted labels: imported instance images and a painted "boundary" class, made into what the
training core takes (class targets and an instance image per slice for the paper's border weights).

The command line trains on instance label images (``unet-studio train --instances``): every object is
foreground, the rest background, and the border weights of the paper come from the instances, so that the
network learns to leave a gap between touching objects. The application gets the same from two sources:

- an **imported instance image** kept beside the labels of its slice (:func:`instance_planes` checks and
  renumbers it); the slice's labels are its foreground/background classes;
- a painted **boundary class** (``ClassInfo.boundary``): its pixels are trained as background, and they cut
  the painted object class into separate objects, so that the border weights of the gap are high (the
  paper's ``w0`` near the contact).

:class:`ObjectClasses` says which class values are the background, the objects and the boundary;
:meth:`ObjectClasses.targets` and :meth:`ObjectClasses.instances` turn one painted slice (and its imported
instances, if any) into the training target and the instance image. For a slice whose labels are an
instance import, both equal what ``load_folder(..., instances=True)`` makes of the same file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..errors import DataError

__all__ = ["ObjectClasses", "instance_planes", "instances_dtype"]


def instances_dtype(max_value: int) -> np.dtype:
    """The smallest unsigned type that holds object numbers up to ``max_value`` (uint16, else uint32)."""
    return np.dtype(np.uint16 if max_value <= np.iinfo(np.uint16).max else np.uint32)


def instance_planes(planes: dict[int, np.ndarray], source: str = "the label image") -> dict[int, np.ndarray]:
    """Instance images (``{slice: (Y, X) object numbers}``) checked and renumbered 1..N per slice.

    Renumbering keeps every object (and so the border weights, which depend only on where objects are) and
    keeps the stored image small.

    Raises
    ------
    DataError
        Values with fractions or below 0: not an instance image (the message says what to do).
    """
    from skimage.segmentation import relabel_sequential

    out = {}
    for slice_index, plane in planes.items():
        plane = np.asarray(plane)
        if plane.dtype.kind == "f":
            if not (np.isfinite(plane).all() and (plane == np.round(plane)).all()):
                raise DataError(f"{source} holds values with fractions: an object label image holds one whole "
                                "number per object; save it as a 16- or 32-bit integer image")
        elif plane.dtype.kind not in "biu":
            raise DataError(f"{source} holds {plane.dtype} values, not object numbers")
        if plane.size and plane.min() < 0:
            raise DataError(f"{source} holds negative values: an object label image numbers objects 1, 2, ... "
                            "with 0 for the background")
        relabelled = relabel_sequential(plane.astype(np.int64))[0]
        top = int(relabelled.max()) if relabelled.size else 0
        out[slice_index] = relabelled.astype(instances_dtype(top))
    return out


@dataclass(frozen=True)
class ObjectClasses:
    """Which class values (1-based, as painted) are the background, the objects and the boundary.

    Attributes
    ----------
    background : int
        Class value of the background (the class named "background", else class 1).
    objects : int
        Class value of the objects: the last class that is neither the background nor a boundary class.
    boundary : tuple of int
        Class values painted as boundary between touching objects (trained as background).
    """

    background: int
    objects: int
    boundary: tuple[int, ...] = ()

    @classmethod
    def of(cls, names, boundary_flags) -> ObjectClasses:
        """The roles of a project's classes from their names and boundary flags (class k is index k - 1).

        Raises
        ------
        DataError
            No class is left for the objects (every class but the background is a boundary class).
        """
        names = [str(n).lower() for n in names]
        flags = [bool(f) for f in boundary_flags]
        boundary = tuple(k + 1 for k, flag in enumerate(flags) if flag)
        plain = [k + 1 for k, flag in enumerate(flags) if not flag]
        named = [v for v in plain if names[v - 1] == "background"]
        background = named[0] if named else (plain[0] if plain else 1)
        objects = [v for v in plain if v != background]
        if not objects:
            raise DataError("the project has no object class besides the background and boundary classes; add a "
                            "class for the objects (Classes panel)")
        return cls(int(background), int(objects[-1]), boundary)

    def targets(self, labels: np.ndarray) -> np.ndarray:
        """The training target of a painted slice: boundary pixels become background (0 stays unlabelled)."""
        labels = np.asarray(labels)
        if not self.boundary:
            return labels
        return np.where(np.isin(labels, self.boundary), labels.dtype.type(self.background), labels)

    def instances(self, labels: np.ndarray, imported: np.ndarray | None = None) -> np.ndarray:
        """The objects of a painted slice, for the border weights: (Y, X) int32, 0 = not an object.

        Pixels of the object class are objects. Where ``imported`` (the slice's instance import) numbers
        them, they keep its objects; object pixels painted since (not in the import) are numbered by their
        connected pieces after those. Pixels painted boundary (or anything else) are never objects, so a
        boundary line across a painted blob cuts it into two objects.
        """
        mask = np.asarray(labels) == self.objects
        out = np.zeros(mask.shape, np.int32)
        top = 0
        if imported is not None:
            imported = np.asarray(imported)
            out[mask] = imported[mask]
            top = int(out.max()) if out.size else 0
            mask &= out == 0
        pieces, count = ndi.label(mask)
        if count:
            out[mask] = pieces[mask] + top
        return out
