"""Objects as three classes: background, object interior, object boundary (the 3-class U-Net of DSB 2018).

A network trained on instance labels with :func:`instance_classes` as its target predicts, per pixel, the
probability of background, of the inside of an object, and of the thin band at the edge of an object (where
it meets another object or the background). Touching objects are then separated by their interiors:

- :func:`instance_classes` encodes an instance image as those three classes (the training target);
- :func:`three_class_instances` decodes three-class probabilities into objects: a seeded watershed whose
  seeds are the connected interiors (or, optionally, the h-maxima of their distance transform) flooding the
  foreground (interior + boundary). Unlike maxima of the distance transform, an interior has one component
  per object whatever its shape, so rods, filaments and curved objects stay whole;
- :func:`instance_mode` reads from a model's description which decoding fits its output, and
  :func:`objects_from_probabilities` applies it (the one place export and the application make objects);
- :func:`match_instances` matches predicted to true objects at an IoU threshold (the DSB 2018 definition),
  for tests and benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from ..errors import ConfigError
from .postprocess import (InstanceConfig, fill_holes, find_instances, probabilities_to_labels, relabel_sequential,
                          remove_small_objects)

#: Class names (and, in this order, output channels) of a three-class instance model.
THREE_CLASS_NAMES = ("background", "interior", "boundary")
#: ``model.json`` ``extra`` key that marks an instance model and says which channel is which.
INSTANCE_OUTPUT_KEY = "instance_output"
#: Ways to make objects from a model's output: ``three_class`` (interior seeds), ``distance`` (a foreground
#: mask split at the maxima of its distance transform).
INSTANCE_MODES = ("three_class", "distance")
#: Default boundary width in pixels (each side of a contact between two objects: a band of twice this).
BOUNDARY_WIDTH = 2


def instance_output_description() -> dict[str, Any]:
    """What ``model.json`` says about a three-class instance model (under :data:`INSTANCE_OUTPUT_KEY`)."""
    return {"mode": "three_class", "channels": {name: k for k, name in enumerate(THREE_CLASS_NAMES)},
            "boundary_width": BOUNDARY_WIDTH}


def instance_classes(instances: np.ndarray, width: int = BOUNDARY_WIDTH) -> np.ndarray:
    """Encode a 2-D instance image as background (0), interior (1) and boundary (2), uint8.

    An object's boundary is its pixels within ``width`` pixels (Euclidean, pixel centre to centre, counting
    the first pixel as 1) of any pixel outside it: background or another object. The image's edge is not a
    boundary (an object cut by it continues outside). A thin object gets a narrower boundary, so that every
    object keeps an interior: the width is the largest ``w <= width`` with an interior at least ``w`` pixels
    deep (``2 w`` wide), down to no boundary at all for objects one or two pixels wide.

    Parameters
    ----------
    instances : numpy.ndarray
        (Y, X) integer labels, 0 = background, any other value = one object.
    width : int
        Boundary width in pixels for objects thick enough.

    Returns
    -------
    numpy.ndarray
        (Y, X) uint8 classes.
    """
    instances = np.asarray(instances)
    if instances.ndim != 2:
        raise ConfigError(f"instance_classes() takes a 2-D instance image, got shape {instances.shape}")
    out = np.zeros(instances.shape, np.uint8)
    if not (instances > 0).any():
        return out
    # object ids 1..N (values <= 0 are background), so find_objects' list stays short
    compact = relabel_sequential(np.where(instances > 0, instances, 0))
    for index, box in enumerate(ndi.find_objects(compact), start=1):
        if box is None:
            continue
        # one pixel of margin: the pixels around the object (other objects, background) are outside it
        window = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, compact.shape))
        inside = compact[window] == index
        depth = ndi.distance_transform_edt(inside)
        deepest = float(depth.max())
        w = next(w for w in range(int(width), -1, -1) if deepest >= 2 * w)
        region = out[window]
        region[inside & (depth > w)] = 1
        region[inside & (depth <= w)] = 2
    return out


@dataclass(frozen=True)
class Matching:
    """Objects of a prediction matched one to one with true objects at IoU > ``threshold``.

    ``best_iou`` holds, per true object (in increasing order of id), the best IoU any predicted object
    reaches with it; ``tp``, ``fp``, ``fn`` count the matches, the unmatched predictions and the unmatched
    true objects.
    """

    threshold: float
    tp: int
    fp: int
    fn: int
    best_iou: np.ndarray

    @property
    def n_true(self) -> int:
        return self.tp + self.fn

    @property
    def n_pred(self) -> int:
        return self.tp + self.fp


def match_instances(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> Matching:
    """Match predicted to true objects at IoU > ``threshold`` (at least 0.5: matches are then unique).

    Parameters
    ----------
    pred, truth : numpy.ndarray
        Integer label images of the same shape, 0 = background; ids need not be consecutive.
    threshold : float
        IoU a pair must exceed to match.

    Returns
    -------
    Matching
    """
    pred, truth = np.asarray(pred), np.asarray(truth)
    if pred.shape != truth.shape:
        raise ConfigError(f"match_instances: shapes differ, {pred.shape} against {truth.shape}")
    if threshold < 0.5:
        raise ConfigError("match_instances needs a threshold of at least 0.5 (one-to-one matches)")
    p, t = relabel_sequential(pred), relabel_sequential(truth)  # ids 1..N, 0 = background
    n_pred, n_true = int(p.max(initial=0)), int(t.max(initial=0))
    joint = np.bincount(t.ravel().astype(np.int64) * (n_pred + 1) + p.ravel(),
                        minlength=(n_true + 1) * (n_pred + 1)).reshape(n_true + 1, n_pred + 1)
    inter = joint[1:, 1:].astype(np.float64)
    union = joint[1:, :].sum(1)[:, None] + joint[:, 1:].sum(0)[None, :] - inter
    iou = inter / np.maximum(union, 1)
    tp = int((iou > threshold).sum())
    best = iou.max(axis=1) if n_pred else np.zeros(n_true)
    return Matching(float(threshold), tp, n_pred - tp, n_true - tp, best)


def _seeds(interior_p: np.ndarray, mask: np.ndarray, config: InstanceConfig) -> np.ndarray:
    """Markers 1..N: the connected interiors (or their distance maxima), small specks left out."""
    from skimage.morphology import h_maxima

    # Interiors are 8-connected: a thin interior running diagonally along a rod is one seed, and the
    # interiors of two touching objects are kept apart by both their boundaries.
    structure = np.ones((3, 3), bool)
    interior = (interior_p > config.seed_threshold) & mask
    markers, _ = ndi.label(interior, structure=structure)
    if config.min_seed_size > 1:  # specks of interior probability are noise, not objects
        markers = remove_small_objects(markers, config.min_seed_size)
    if config.seed_h > 0 and markers.any():
        depth = ndi.distance_transform_edt(markers > 0)
        markers, _ = ndi.label(h_maxima(depth, config.seed_h).astype(bool) & (markers > 0), structure=structure)
    return markers


def three_class_instances(probs: np.ndarray, mask: np.ndarray | None = None,
                          config: InstanceConfig = InstanceConfig()) -> np.ndarray:
    """Objects from three-class probabilities (background, interior, boundary): int32 labels 1..N.

    Parameters
    ----------
    probs : numpy.ndarray
        (3, Y, X) probabilities (float in [0, 1], or uint8 0..255) in the order of :data:`THREE_CLASS_NAMES`.
    mask : numpy.ndarray, optional
        Foreground to split (interior + boundary); default: pixels where background is not the most probable
        class.
    config : InstanceConfig
        ``seed_threshold``, ``seed_h`` and ``min_seed_size`` choose the seeds; ``max_hole_size``,
        ``min_size`` and ``connectivity`` as for :func:`~unet_studio.core.predict.postprocess.find_instances`.

    Returns
    -------
    numpy.ndarray
        (Y, X) int32 objects; every connected piece of foreground holds at least one object.
    """
    from skimage.segmentation import watershed

    probs = np.asarray(probs)
    if probs.ndim != 3 or probs.shape[0] != 3:
        raise ConfigError(f"three_class_instances() takes (3, Y, X) probabilities, got shape {probs.shape}")
    probs = probs.astype(np.float32) / 255.0 if probs.dtype == np.uint8 else probs.astype(np.float32, copy=False)
    if mask is None:
        mask = np.argmax(probs, axis=0) != 0
    mask = np.asarray(mask, bool)
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    markers = _seeds(probs[1], mask, config)
    structure = ndi.generate_binary_structure(2, config.connectivity)
    blobs, n_blobs = ndi.label(mask, structure=structure)
    seeded = np.zeros(n_blobs + 1, bool)
    seeded[blobs[markers > 0]] = True
    missing = np.flatnonzero(~seeded[1:]) + 1
    if missing.size:  # a piece of foreground without an interior seed is one object (at its most inner pixel)
        n_markers = int(markers.max(initial=0))
        positions = ndi.maximum_position(probs[1] + 1e-3 * ndi.distance_transform_edt(mask), blobs, missing)
        for offset, (row, col) in enumerate(positions, start=1):
            markers[row, col] = n_markers + offset
    # Flooding from the interiors outwards, in order of falling interior probability: where two objects
    # touch, the line between them lies where the floods meet, furthest from both interiors. (Boundary minus
    # interior probability would make a background gap between two cells a valley, along which one cell's
    # flood runs around its neighbours.)
    labels = watershed(-probs[1], markers, mask=mask, connectivity=config.connectivity)
    if config.max_hole_size:
        labels = fill_object_holes(labels, mask, config.max_hole_size)
    if config.min_size > 1:
        labels = remove_small_objects(labels, config.min_size)
    return relabel_sequential(labels)


def fill_object_holes(labels: np.ndarray, mask: np.ndarray, max_size: int) -> np.ndarray:
    """Give each hole of ``mask`` (background enclosed by foreground, up to ``max_size`` pixels) to the object
    around it, when one object encloses it alone; a pocket of background between touching objects stays."""
    holes = fill_holes(mask, max_size) & ~mask
    if not holes.any():
        return labels
    labels = labels.copy()
    hole_ids, _ = ndi.label(holes)
    for index, box in enumerate(ndi.find_objects(hole_ids), start=1):
        window = tuple(slice(max(s.start - 1, 0), min(s.stop + 1, n)) for s, n in zip(box, labels.shape))
        hole = hole_ids[window] == index
        ring = ndi.binary_dilation(hole) & ~hole
        owners = np.unique(labels[window][ring])
        owners = owners[owners != 0]
        if len(owners) == 1:
            labels[window][hole] = owners[0]
    return labels


def instance_mode(class_names, extra: dict | None) -> str:
    """How objects are made from a model's output: ``"three_class"`` for a three-class instance model
    (its ``model.json`` says so), else ``"distance"`` (a foreground mask split by its distance transform)."""
    described = (extra or {}).get(INSTANCE_OUTPUT_KEY)
    if isinstance(described, dict) and described.get("mode") == "three_class" \
            and tuple(str(n) for n in class_names) == THREE_CLASS_NAMES:
        return "three_class"
    return "distance"


def resolve_instance_mode(requested: str, class_names, extra: dict | None) -> str:
    """The instance mode to use: ``requested`` (``"auto"``: the model's, see :func:`instance_mode`).

    Raises
    ------
    ConfigError
        An unknown mode, or ``"three_class"`` for a model whose classes are not background, interior, boundary.
    """
    if requested == "auto":
        return instance_mode(class_names, extra)
    if requested not in INSTANCE_MODES:
        raise ConfigError(f"instance mode must be auto or one of {', '.join(INSTANCE_MODES)}, got {requested!r}")
    names = tuple(str(n) for n in class_names)
    if requested == "three_class" and names != THREE_CLASS_NAMES:
        raise ConfigError(f"the three_class instance mode needs a model trained with 'unet-studio train --instances' "
                          f"(classes {', '.join(THREE_CLASS_NAMES)}); this model's classes are {', '.join(names)}: "
                          "use the distance mode")
    return requested


def objects_from_probabilities(probs: np.ndarray, mask: np.ndarray, foreground: list[int], mode: str,
                               config: InstanceConfig = InstanceConfig()) -> np.ndarray:
    """Objects (int32 labels 1..N) of one slice, the way ``mode`` says.

    Parameters
    ----------
    probs : numpy.ndarray
        (K, Y, X) probabilities of the model's classes.
    mask : numpy.ndarray
        (Y, X) foreground: pixels whose class (after the thresholds) is one of ``foreground``.
    foreground : list of int
        Channel indices of the classes that make up objects.
    mode : str
        ``"three_class"`` (probs are background, interior, boundary: interior seeds) or ``"distance"``.
    config : InstanceConfig
        Splitting and clean-up; ``method="components"`` makes each connected piece of foreground one object
        in either mode.
    """
    if mode not in INSTANCE_MODES:
        raise ConfigError(f"instance mode must be one of {', '.join(INSTANCE_MODES)}, got {mode!r}")
    if mode == "three_class" and config.method == "watershed":
        if probs.shape[0] != 3:
            raise ConfigError(f"the three_class instance mode needs a three-class model (background, interior, "
                              f"boundary); this one has {probs.shape[0]} classes: use the distance mode")
        return three_class_instances(probs, mask, config)
    return find_instances(mask, probs[foreground].sum(0) if foreground else None, config)


def objects_of_slice(probs: np.ndarray, thresholds, foreground: list[int], mode: str,
                     config: InstanceConfig = InstanceConfig()) -> np.ndarray:
    """Objects (int32 labels 1..N) of one slice's (K, Y, X) probabilities (float in [0, 1] or uint8 0..255).

    The one path from probabilities to objects, for files (export, ``unet-studio predict --instances``) and
    the screen alike: the pixels whose class after ``thresholds`` (see :func:`probabilities_to_labels`) is
    one of ``foreground`` (channel indices), made into objects the way ``mode`` says
    (:func:`objects_from_probabilities`).
    """
    by_index = probabilities_to_labels(probs, list(range(len(probs))), thresholds)
    mask = np.isin(by_index, foreground)
    return objects_from_probabilities(probs, mask, foreground, mode, config)
