"""Training data from folders on disk: images paired with label images by file name, and class values.

Label conventions (see :func:`map_label_values`):

* **sparse**: one value (0 in the application) means "not annotated"; every other value is a class.
  The loss ignores unannotated pixels, so a few painted strokes train on those strokes only.
* **dense**: every distinct value is a class (a 0/255 mask gives two classes, and predictions are
  written back as 0/255).

Inside the core a label image is always ``int64``-compatible with 0 = unlabelled and 1..K = class K;
``class_values[k - 1]`` is the value class ``k`` had in the files.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .data import TrainingSet
from ..errors import DataError, ImageReadError

log = logging.getLogger(__name__)

#: Dense label images with more distinct values than this are probably instance images.
MAX_DENSE_CLASSES = 16
_LABEL_SUFFIXES = ("_labels", "_label", "_masks", "_mask", "-labels", "-label", "_gt", "_seg")


def map_label_values(raw_labels: list[np.ndarray], unlabelled: int | None = None,
                     instances: bool = False) -> tuple[list[np.ndarray], list[int]]:
    """Map raw label images to 0 = unlabelled, 1..K; return them and ``class_values`` (K values).

    ``unlabelled=None`` (dense): every distinct value is a class. ``unlabelled=V`` (sparse): pixels
    equal to V are ignored and the other values are classes. ``instances=True``: instance images
    (0 background, 1..N objects) become background (class 1, value 0) and foreground (class 2, value 1).
    """
    if instances:
        mapped = [np.where(np.asarray(lab) > 0, 2, 1).astype(np.int64) for lab in raw_labels]
        return mapped, [0, 1]
    values = np.unique(np.concatenate([np.unique(np.asarray(lab)) for lab in raw_labels]))
    if unlabelled is not None:
        values = values[values != unlabelled]
    if len(values) == 0:
        raise DataError("no labelled pixel at all: every label pixel has the 'unlabelled' value "
                        f"{unlabelled}; paint some labels or check --unlabelled")
    if len(values) == 1:
        raise DataError(f"the labels hold a single class (value {int(values[0])}); at least two classes "
                        "are needed to train")
    if unlabelled is None and len(values) > MAX_DENSE_CLASSES:
        raise DataError(f"the label images hold {len(values)} distinct values, too many for dense classes; "
                        "for instance label images use --instances, for sparse labels --unlabelled 0")
    class_values = [int(v) for v in values]
    mapped = []
    for lab in raw_labels:
        lab = np.asarray(lab)
        # searchsorted maps each value to its class index; unlabelled values map to 0 below.
        index = np.searchsorted(values, lab).clip(0, len(values) - 1)
        out = (index + 1).astype(np.int64)
        out[values[index] != lab] = 0
        mapped.append(out)
    return mapped, class_values


def _label_stem(path: Path) -> str:
    stem = path.name.split(".")[0].lower()
    for suffix in _LABEL_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def pair_files(images_dir: str | Path, labels_dir: str | Path) -> list[tuple[Path, Path]]:
    """Pair images with label images by file name (``a.tif`` with ``a.tif``, ``a_labels.tif``, ``a_mask.png``).

    Raises :class:`DataError` naming the unpaired files.
    """
    images_dir, labels_dir = Path(images_dir), Path(labels_dir)
    for folder, what in ((images_dir, "images"), (labels_dir, "labels")):
        if not folder.is_dir():
            raise DataError(f"the {what} folder {folder} does not exist or is not a folder")
    images = _list_images(images_dir)
    labels = _list_images(labels_dir)
    if not images:
        raise DataError(f"no image files in {images_dir}")
    by_stem: dict[str, Path] = {}
    for path in labels:
        by_stem.setdefault(path.name.split(".")[0].lower(), path)
        by_stem.setdefault(_label_stem(path), path)
    pairs, missing = [], []
    used = set()
    for image in images:
        label = by_stem.get(image.name.split(".")[0].lower())
        if label is None:
            missing.append(image.name)
        else:
            pairs.append((image, label))
            used.add(label)
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise DataError(f"no label image in {labels_dir} for {shown} (labels are paired by file name, e.g. "
                        f"{missing[0]} with {missing[0]} or {Path(missing[0]).stem}_labels.tif); add the label "
                        "image or move the image out of the images folder")
    extra = [p.name for p in labels if p not in used]
    if extra:
        log.warning("label images without an image are ignored: %s", ", ".join(extra[:5]))
    return pairs


def _list_images(folder: Path) -> list[Path]:
    try:
        from ..io.stack import list_images
    except ImportError:  # io.py not there yet: same rule, tiff/png only
        return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
                      and p.suffix.lower() in (".tif", ".tiff", ".png"))
    return list(list_images(folder))


def read_image_slices(path: Path) -> list[np.ndarray]:
    """Read an image (stack) as a list of normalised (C, Y, X) float32 slices."""
    try:
        from ..io.stack import normalize_percentile, read_image
    except ImportError:
        return [_normalize(s) for s in _read_tiff_fallback(path, labels=False)]
    from ..io.stack import pixel_warning, require_memory

    with read_image(path) as stack:
        n_values = len(stack) * int(np.prod(stack.shape[1:], dtype=np.int64))
        require_memory(path, n_values * 4 + 2 * stack.slice_nbytes, stack.describe_size(whole=True), "training on")
        slices, flagged = [], []
        for i in range(len(stack)):
            raw = stack.get_slice(i)
            problem = pixel_warning(raw)
            if problem:
                flagged.append((i, problem))
            slices.append(normalize_percentile(raw))
    if flagged:
        where = "" if len(slices) == 1 else f" slice {flagged[0][0]}" + (
            f" (and {len(flagged) - 1} more slices)" if len(flagged) > 1 else "")
        log.warning("'%s'%s: %s", path, where, flagged[0][1])
    return slices


def read_label_slices(path: Path) -> list[np.ndarray]:
    """Read a label image (stack) as a list of (Y, X) integer slices."""
    try:
        from ..io.stack import read_labels
    except ImportError:
        array = _read_tiff_fallback(path, labels=True)
    else:
        array = read_labels(path)
    array = np.asarray(array)
    return [array] if array.ndim == 2 else list(array)


def _read_tiff_fallback(path: Path, labels: bool):
    import tifffile

    try:
        array = tifffile.imread(path)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a bad file for the person
        raise ImageReadError(f"cannot read {path}: {exc}") from None
    if labels:
        if not np.issubdtype(array.dtype, np.integer):
            raise ImageReadError(f"{path}: label images must hold integers, got {array.dtype}")
        return array
    array = np.asarray(array, np.float32)
    if array.ndim == 2:
        return [array[None]]
    return [s[None] for s in array.reshape(-1, *array.shape[-2:])]


def _normalize(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    out = np.empty_like(image, dtype=np.float32)
    for c, channel in enumerate(image):
        finite = np.nan_to_num(channel.astype(np.float32))
        lo, hi = np.percentile(finite, (low, high))
        out[c] = (finite - lo) / (hi - lo) if hi > lo else 0.0
    return out


def load_folder(images_dir, labels_dir, unlabelled: int | None = None,
                instances: bool = False) -> tuple[TrainingSet, list[int], list[str]]:
    """Load paired folders into a :class:`TrainingSet`; return it, the class values and class names.

    Stacks become one item per slice; a single 2D label image may not pair with a stack.
    Raises :class:`DataError` (unpaired files, shapes that differ, no labelled pixel) or
    :class:`ImageReadError` (unreadable files) with a one-line message.
    """
    pairs = pair_files(images_dir, labels_dir)
    images, raw = [], []
    for image_path, label_path in pairs:
        slices = read_image_slices(image_path)
        label_slices = read_label_slices(label_path)
        if len(slices) != len(label_slices) or slices[0].shape[1:] != label_slices[0].shape:
            shape_i = (len(slices),) + slices[0].shape[1:] if len(slices) > 1 else slices[0].shape[1:]
            shape_l = ((len(label_slices),) + label_slices[0].shape if len(label_slices) > 1
                       else label_slices[0].shape)
            raise DataError(f"{image_path.name} is {tuple(shape_i)} but its labels {label_path.name} are "
                            f"{tuple(shape_l)}: an image and its label image must have the same size; check that "
                            "the label image was made for this image (and not cropped or scaled)")
        images.extend(slices)
        raw.extend(label_slices)
    labels, class_values = map_label_values(raw, unlabelled, instances)
    if not any(lab.any() for lab in labels):
        raise DataError("no labelled pixel at all in the label images")
    names = ["background", "foreground"] if instances else [f"value {v}" for v in class_values]
    instance_images = [np.asarray(r) for r in raw] if instances else None
    return TrainingSet(images, labels, len(class_values), instances=instance_images), class_values, names
