"""Label values and types: the dtype that holds a class number, the slices an imported label image brings,
and what each value of an imported label image becomes (a mapping of file values to classes)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ImageReadError


def labels_dtype(max_value: int) -> np.dtype:
    """The smallest label dtype that holds ``max_value``: uint8 up to 255, uint16 up to 65535.

    Raises
    ------
    ValueError
        ``max_value`` is negative or above 65535 (more classes than a project can have).
    """
    for dtype in (np.uint8, np.uint16):
        if 0 <= max_value <= np.iinfo(dtype).max:
            return np.dtype(dtype)
    raise ValueError(f"label value {max_value} outside 0..65535")


def label_planes(data: np.ndarray, shape: tuple[int, int, int], slice_index: int, source: str,
                 image_name: str) -> dict[int, np.ndarray]:
    """The slices a label image brings to an image of ``shape`` ``(S, Y, X)``: ``{slice: (Y, X) values}``.

    A ``(Y, X)`` label image goes to ``slice_index``, an ``(S, Y, X)`` one to every slice. Raises
    :class:`~unet_studio.core.errors.ImageReadError` naming ``source`` when the size does not fit.
    """
    n_slices, height, width = shape
    if data.shape == (height, width):
        return {slice_index: data}
    if data.shape == (n_slices, height, width):
        return dict(enumerate(data))
    size = " x ".join(str(n) for n in data.shape)
    whole = f", or {n_slices} x {height} x {width} for the whole stack" if n_slices > 1 else ""
    raise ImageReadError(f"Cannot import '{source}': the label image is {size} pixels but the image "
                         f"'{image_name}' is {height} x {width}{whole}. Choose the label image made for "
                         "this image.")


# ---------------------------------------------------------------------- mapping a label image's values to classes

#: More distinct non-zero values than this are shown (and proposed) as one group, "every non-zero value".
MAX_LISTED_VALUES = 16


@dataclass(frozen=True)
class LabelMapping:
    """What each value of an imported label image becomes: 0 = unlabelled, k = class k of the project.

    Attributes
    ----------
    values : dict of int to int
        File value -> class value.
    others : int
        Class value of every file value not in ``values`` (0: they stay unlabelled).
    instances : bool
        The file is an object label image to keep as such (one number per object) beside the classes it
        maps to, so that training separates touching objects (see :mod:`.instances`).
    """

    values: dict[int, int] = field(default_factory=dict)
    others: int = 0
    instances: bool = False

    def with_zero(self, class_value: int) -> "LabelMapping":
        """The same mapping with the file value 0 mapped to ``class_value`` (0 = unlabelled, 1 = background)."""
        return LabelMapping({**self.values, 0: int(class_value)}, self.others, self.instances)


def distinct_values(data: np.ndarray) -> np.ndarray:
    """The sorted distinct values of an integer label array (a histogram for 8- and 16-bit data: fast)."""
    data = np.asarray(data)
    if data.dtype in (np.uint8, np.uint16, np.bool_):
        counts = np.bincount(data.ravel().astype(np.intp, copy=False), minlength=1)
        return np.flatnonzero(counts)
    return np.unique(data)


def label_image_kind(found, n_classes: int) -> str:
    """What a label image with the distinct values ``found`` looks like to a project of ``n_classes`` classes.

    Returns
    -------
    str
        ``"classes"``: every value is 0 or a class number (the project's own convention);
        ``"mask"``: one non-zero value (a binary mask, 0/255 from Fiji); ``"levels"``: a few values,
        no more than there are classes; ``"instances"``: more non-zero values than classes (an object
        label image, each object its own number).
    """
    found = np.asarray(found)
    nonzero = found[found != 0]
    has_zero = nonzero.size < found.size
    if found.size and found.min() >= 0 and found.max() <= n_classes:
        return "classes"
    if nonzero.size == 1:
        return "mask"
    if nonzero.size + has_zero <= n_classes:
        return "levels"
    return "instances"


def propose_mapping(found, n_classes: int, zero_is_background: bool | None = None) -> LabelMapping:
    """A proposal of what each value of a label image becomes in a project of ``n_classes`` classes.

    Values that already are class numbers stay what they are; a binary mask becomes background and
    foreground (class 1 and 2); a few values become the first classes in order; an object label image
    (many values) becomes "every object is foreground".

    Parameters
    ----------
    found : array_like of int
        The distinct values of the file (see :func:`distinct_values`).
    n_classes : int
        Classes of the project (at least 1).
    zero_is_background : bool, optional
        Whether 0 is background (class 1) or unlabelled; by default unlabelled for a file in the project's
        own convention and background for any other.
    """
    found = np.asarray(found)
    kind = label_image_kind(found, n_classes)
    if zero_is_background is None:
        zero_is_background = kind != "classes"
    nonzero = [int(v) for v in found if v != 0]
    foreground = min(2, n_classes)
    if kind == "classes":
        values = {v: v for v in nonzero}
    elif kind == "mask":
        values = {nonzero[0]: foreground}
    elif kind == "levels":
        # With a 0 in the file, class 1 is kept for it (background) and the other values follow in order.
        first = 2 if len(nonzero) < found.size else 1
        values = {v: first + i for i, v in enumerate(nonzero)}
    else:
        listed = nonzero if len(nonzero) <= MAX_LISTED_VALUES else []
        values = {v: foreground for v in listed}
        return LabelMapping(values, foreground).with_zero(1 if zero_is_background else 0)
    return LabelMapping(values).with_zero(1 if zero_is_background else 0)


def apply_mapping(data: np.ndarray, mapping: LabelMapping) -> np.ndarray:
    """The class values of a label array under ``mapping``, vectorised (no loop over pixels or values).

    Works on any integer dtype (uint8, uint16, int32, ...); file values not in ``mapping.values`` become
    ``mapping.others``. The result has the smallest label dtype that holds the largest class value.
    """
    data = np.asarray(data)
    top = max([mapping.others, *mapping.values.values()], default=0)
    dtype = labels_dtype(top)
    if data.dtype in (np.uint8, np.uint16, np.bool_):
        # A lookup table over every possible value: one fancy-indexing pass.
        size = 2 if data.dtype == np.bool_ else np.iinfo(data.dtype).max + 1
        table = np.full(size, mapping.others, dtype=dtype)
        for value, label in mapping.values.items():
            if 0 <= value < size:
                table[value] = label
        return table[data.astype(np.intp, copy=False)] if data.dtype == np.bool_ else table[data]
    keys = np.array(sorted(mapping.values), dtype=np.int64)
    if keys.size == 0:
        return np.full(data.shape, mapping.others, dtype=dtype)
    labels = np.array([mapping.values[int(k)] for k in keys], dtype=dtype)
    flat = data.astype(np.int64, copy=False)
    where = np.clip(np.searchsorted(keys, flat), 0, keys.size - 1)
    return np.where(keys[where] == flat, labels[where], np.asarray(mapping.others, dtype=dtype)).astype(dtype)
