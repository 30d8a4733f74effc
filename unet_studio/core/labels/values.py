"""Label values and types: the dtype that holds a class number, the slices an imported label image brings."""

from __future__ import annotations

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


def fit_label_image(data: np.ndarray, shape: tuple[int, int, int], slice_index: int, n_classes: int,
                    source: str, image_name: str) -> dict[int, np.ndarray]:
    """The slices a label image brings to an image of ``shape`` ``(S, Y, X)``: ``{slice: (Y, X) values}``.

    A ``(Y, X)`` label image goes to ``slice_index``, an ``(S, Y, X)`` one to every slice. Raises
    :class:`~unet_studio.core.errors.ImageReadError` naming ``source`` when the size does not fit or a value
    is not a class (0 = unlabelled, 1..``n_classes``).
    """
    n_slices, height, width = shape
    if data.shape == (height, width):
        planes = {slice_index: data}
    elif data.shape == (n_slices, height, width):
        planes = dict(enumerate(data))
    else:
        size = " x ".join(str(n) for n in data.shape)
        whole = f", or {n_slices} x {height} x {width} for the whole stack" if n_slices > 1 else ""
        raise ImageReadError(f"Cannot import '{source}': the label image is {size} pixels but the image "
                             f"'{image_name}' is {height} x {width}{whole}. Choose the label image made for "
                             "this image.")
    top = int(data.max()) if data.size else 0
    if top > n_classes or (data.size and int(data.min()) < 0):
        raise ImageReadError(f"Cannot import '{source}': it holds the label value {top} but the project has "
                             f"{n_classes} classes (values 1 to {n_classes}, 0 = unlabelled). Add classes in the "
                             f"Classes panel until there are {top}, or relabel the file.")
    return planes
