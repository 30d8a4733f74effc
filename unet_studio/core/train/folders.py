"""Training data from folders on disk: images paired with label images by file name, and class values.

Label conventions (see :func:`map_label_values`):

* **sparse**: one value (0 in the application) means "not annotated"; every other value is a class.
  The loss ignores unannotated pixels, so a few painted strokes train on those strokes only.
* **dense**: every distinct value is a class (a 0/255 mask gives two classes, and predictions are
  written back as 0/255).
* **instances** (0 background, 1..N objects): by default three classes, background (value 0), object
  interior (1) and object boundary (2), so that the model separates touching objects
  (:func:`~unet_studio.core.predict.instance_classes`); or background/foreground (0/1).

Inside the core a label image is always ``int64``-compatible with 0 = unlabelled and 1..K = class K;
``class_values[k - 1]`` is the value class ``k`` had in the files.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import list_images, normalize_percentile, pixel_warning, read_image, read_labels, require_memory
from ..predict import INSTANCE_MODES, THREE_CLASS_NAMES, instance_classes
from .data import TrainingSet

log = logging.getLogger(__name__)

#: Dense label images with more distinct values than this are probably instance images.
MAX_DENSE_CLASSES = 16
#: Endings of a label image's name after the name of its image (``a_labels.tif`` labels ``a.tif``).
LABEL_SUFFIXES = ("_labels", "_label", "_masks", "_mask", "-labels", "-label", "_gt", "_seg")


#: Label images hold values a label image type can hold (uint8 .. uint32, or int32 with negative values);
#: the class values of a model are written back with them.
LABEL_VALUE_RANGE = (-(2**31), 2**32 - 1)


def _class_values_of(raw_labels: list[np.ndarray]) -> np.ndarray:
    """The distinct values of the label images as int64, refusing values no label image can hold."""
    low, high = LABEL_VALUE_RANGE
    uniques = []
    for lab in raw_labels:
        values = np.unique(np.asarray(lab))
        if not np.issubdtype(values.dtype, np.integer):
            raise DataError(f"label images must hold whole numbers, got {values.dtype}; save them as 8- or "
                            "16-bit integer images")
        # Compare as Python ints: mixing uint64 and int64 arrays would go through float64 and round.
        if values.size and (int(values[0]) < low or int(values[-1]) > high):
            bad = int(values[0]) if int(values[0]) < low else int(values[-1])
            raise DataError(f"a label image holds the value {bad}, outside {low}..{high} (what a label image "
                            "can hold and a model can write back); renumber the labels, e.g. as 8- or 16-bit "
                            "integers")
        uniques.append(values.astype(np.int64))
    return np.unique(np.concatenate(uniques)) if uniques else np.zeros(0, np.int64)


def map_label_values(raw_labels: list[np.ndarray], unlabelled: int | None = None, instances: bool = False,
                     instance_output: str = "distance") -> tuple[list[np.ndarray], list[int]]:
    """Map raw label images to 0 = unlabelled, 1..K; return them and ``class_values`` (K values).

    ``unlabelled=None`` (dense): every distinct value is a class. ``unlabelled=V`` (sparse): pixels
    equal to V are ignored and the other values are classes. ``instances=True``: instance images
    (0 background, 1..N objects) become, with ``instance_output="three_class"``, background (class 1,
    value 0), object interior (class 2, value 1) and object boundary (class 3, value 2; see
    :func:`~unet_studio.core.predict.instance_classes`), with ``"distance"`` background (class 1, value 0)
    and foreground (class 2, value 1).
    Raises :class:`DataError` for values outside :data:`LABEL_VALUE_RANGE` (never wrapped).
    """
    if instances:
        return _instance_targets(raw_labels, instance_output)
    values = _class_values_of(raw_labels)
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
        lab = np.asarray(lab).astype(np.int64)  # in range (checked above): exact
        # searchsorted maps each value to its class index; unlabelled values map to 0 below.
        index = np.searchsorted(values, lab).clip(0, len(values) - 1)
        out = (index + 1).astype(np.int64)
        out[values[index] != lab] = 0
        mapped.append(out)
    return mapped, class_values


def _instance_targets(raw_labels: list[np.ndarray], instance_output: str) -> tuple[list[np.ndarray], list[int]]:
    """Training targets (1..K) and class values of instance images, for ``instance_output``."""
    if instance_output not in INSTANCE_MODES:
        raise DataError(f"instance_output must be one of {', '.join(INSTANCE_MODES)}, got {instance_output!r}")
    objects = []
    for lab in raw_labels:
        lab = np.asarray(lab)
        if lab.dtype.kind not in "biu":  # whole numbers stored as floats are fine
            if lab.dtype.kind != "f" or not (np.isfinite(lab).all() and (lab == np.round(lab)).all()):
                raise DataError(f"instance label images must hold whole numbers (one per object), got {lab.dtype} "
                                "values with fractions; save them as 16- or 32-bit integer images")
            lab = lab.astype(np.int64)
        objects.append(lab)
    if instance_output == "distance":
        return [np.where(lab > 0, 2, 1).astype(np.int64) for lab in objects], [0, 1]
    return [instance_classes(lab).astype(np.int64) + 1 for lab in objects], [0, 1, 2]


def image_stem(path: Path) -> str:
    """The name of an image file without its extension (``cell.1.tif`` -> ``cell.1``, ``a.ome.tif`` -> ``a``)."""
    stem = path.name[: -len(path.suffix)] if path.suffix else path.name
    return stem[:-4] if stem.lower().endswith(".ome") and len(stem) > 4 else stem


def label_key(path: Path) -> str:
    """What a label image names: its stem without a label suffix (``a_labels.tif`` -> ``a``)."""
    stem = image_stem(path)
    for suffix in LABEL_SUFFIXES:
        if stem.lower().endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def _candidates(stem: str, labels: list[Path], exact: bool) -> list[Path]:
    if exact:
        return [p for p in labels if image_stem(p) == stem or label_key(p) == stem]
    folded = stem.casefold()
    return [p for p in labels if image_stem(p).casefold() == folded or label_key(p).casefold() == folded]


def _shown(names: list[str]) -> str:
    return ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def pair_files(images_dir: str | Path, labels_dir: str | Path) -> list[tuple[Path, Path]]:
    """Pair images with label images by file name (``a.tif`` with ``a.tif``, ``a_labels.tif``, ``a_mask.png``).

    The whole stem counts (``cell.1.tif`` pairs with ``cell.1.tif`` or ``cell.1_labels.tif``), letter case
    first exactly, then, for an image with no exact match, ignoring case. An image never pairs with itself:
    when both folders are one, files with a label suffix are the labels. Raises :class:`DataError` naming the
    files when an image has no label image, several, or one that another image has too.
    """
    images_dir, labels_dir = Path(images_dir), Path(labels_dir)
    for folder, what in ((images_dir, "images"), (labels_dir, "labels")):
        if not folder.is_dir():
            raise DataError(f"the {what} folder {folder} does not exist or is not a folder")
    images, labels = list_images(images_dir), list_images(labels_dir)
    if images_dir.resolve() == labels_dir.resolve():
        labels = [p for p in labels if label_key(p) != image_stem(p)]
        images = [p for p in images if p not in labels]
    if not images:
        raise DataError(f"no image files in {images_dir}")
    pairs, missing, owner = [], [], {}  # owner: label image -> the image it labels
    for exact in (True, False):
        for image in images:
            if image in owner.values():
                continue
            found = [p for p in _candidates(image_stem(image), labels, exact) if p != image]
            if not exact and found and all(p in owner for p in found):  # taken by exact matches
                raise DataError(f"{image.name} has no label image of its own in {labels_dir}: {found[0].name} "
                                f"labels {owner[found[0]].name} (the names differ only in letter case); add a "
                                f"label image for {image.name}")
            if len(found) > 1:
                raise DataError(f"{image.name} matches several label images in {labels_dir}: "
                                f"{_shown([p.name for p in found])}; keep one of them")
            if found:
                if found[0] in owner:
                    raise DataError(f"{owner[found[0]].name} and {image.name} both pair with the label image "
                                    f"{found[0].name} in {labels_dir}; rename one of the images or give each its "
                                    "own label image")
                owner[found[0]] = image
                pairs.append((image, found[0]))
            elif not exact:
                missing.append(image.name)
    if missing:
        raise DataError(f"no label image in {labels_dir} for {_shown(missing)} (labels are paired by file name, e.g. "
                        f"{missing[0]} with {missing[0]} or {image_stem(Path(missing[0]))}_labels.tif); add the "
                        "label image or move the image out of the images folder")
    extra = [p.name for p in labels if p not in owner]
    if extra:
        log.warning("label images without an image are ignored: %s", ", ".join(extra[:5]))
    order = {image: n for n, image in enumerate(images)}
    return sorted(pairs, key=lambda pair: order[pair[0]])


def read_image_slices(path: Path) -> list[np.ndarray]:
    """Read an image (stack) as a list of normalised (C, Y, X) float32 slices."""
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
    array = np.asarray(read_labels(path))
    return [array] if array.ndim == 2 else list(array)


def load_folder(images_dir, labels_dir, unlabelled: int | None = None, instances: bool = False,
                instance_output: str = "distance") -> tuple[TrainingSet, list[int], list[str]]:
    """Load paired folders into a :class:`TrainingSet`; return it, the class values and class names.

    Stacks become one item per slice; a single 2D label image may not pair with a stack. Instance label
    images (``instances``) become the classes ``instance_output`` says (see :func:`map_label_values`).
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
    labels, class_values = map_label_values(raw, unlabelled, instances, instance_output)
    if not any(lab.any() for lab in labels):
        raise DataError("no labelled pixel at all in the label images")
    if instances:
        names = list(THREE_CLASS_NAMES) if len(class_values) == 3 else ["background", "foreground"]
    else:
        names = [f"value {v}" for v in class_values]
    instance_images = [np.asarray(r) for r in raw] if instances else None
    return TrainingSet(images, labels, len(class_values), instances=instance_images), class_values, names
