"""From a foreground mask (or probabilities) to objects and their measurements.

- :func:`connected_components`, :func:`remove_small_objects`, :func:`fill_holes`: the basic clean-up.
- :func:`split_touching`: marker-controlled watershed that separates touching objects (nuclei). Seeds are
  the h-maxima of the smoothed distance transform of the mask, optionally weighted by the foreground
  probability (so that a dip in confidence between two nuclei also separates them).
- :func:`find_instances`: the whole pipeline, driven by :class:`InstanceConfig`. (Models trained on instance
  labels predict background, interior and boundary instead: :mod:`.instances` makes their objects.)
- :func:`measure`: per-object measurements through :func:`skimage.measure.regionprops_table`, with
  physical columns when the pixel size is known; :func:`write_measurements_csv` saves them atomically.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ..io import write_text
from ..config import ConfigDict
from ..errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstanceConfig(ConfigDict):
    """How to turn a foreground mask into objects.

    method
        ``"watershed"`` splits touching objects; ``"components"`` keeps each connected blob as one object.
    seeds
        ``"distance"``: maxima of the distance transform; ``"probability"``: of the distance transform
        weighted by the foreground probability (needs the probability map, else falls back to distance).
    h
        A maximum must rise ``h`` pixels (of distance) above its surroundings to seed its own object:
        larger values split less. The defaults (h 0.5, sigma 1) count the nuclei of ``dsb2018`` (ground-truth
        foreground) with a total error of 110 against 254 for connected components (``bench/instance_counts.py``).
    sigma
        Gaussian smoothing of the distance map before the maxima are found (pixels), against ragged edges.
    min_size
        Objects smaller than this many pixels are removed (after splitting).
    max_hole_size
        Holes up to this many pixels inside the mask are filled before splitting (0: none).
    connectivity
        1: 4-connected objects, 2: 8-connected.
    seed_threshold, seed_h, min_seed_size
        Three-class models only (:func:`~unet_studio.core.predict.instances.three_class_instances`): seeds are
        the connected pixels whose interior probability exceeds ``seed_threshold``, of at least
        ``min_seed_size`` pixels; with ``seed_h`` > 0, the h-maxima of depth ``seed_h`` (pixels) of their
        distance transform instead (splits interiors that touch; 0: off).
    """

    method: str = "watershed"
    seeds: str = "distance"
    h: float = 0.5
    sigma: float = 1.0
    min_size: int = 10
    max_hole_size: int = 64
    connectivity: int = 1
    seed_threshold: float = 0.5
    seed_h: float = 0.0
    min_seed_size: int = 4

    def __post_init__(self) -> None:
        if self.method not in ("watershed", "components"):
            raise ConfigError(f"method must be 'watershed' or 'components', got {self.method!r}")
        if self.seeds not in ("distance", "probability"):
            raise ConfigError(f"seeds must be 'distance' or 'probability', got {self.seeds!r}")
        if self.h <= 0 or self.sigma < 0 or self.min_size < 0 or self.max_hole_size < 0:
            raise ConfigError("h must be positive; sigma, min_size and max_hole_size at least 0")
        if self.connectivity not in (1, 2):
            raise ConfigError(f"connectivity must be 1 or 2, got {self.connectivity}")
        if not 0.0 < self.seed_threshold < 1.0 or self.seed_h < 0 or self.min_seed_size < 0:
            raise ConfigError("seed_threshold must be in (0, 1); seed_h and min_seed_size at least 0")


def connected_components(mask: np.ndarray, connectivity: int = 1) -> np.ndarray:
    """Label the connected foreground blobs of a 2-D mask 1..N (int32, 0 = background)."""
    from skimage.measure import label

    return label(np.asarray(mask) > 0, connectivity=connectivity).astype(np.int32, copy=False)


def remove_small_objects(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Set objects (or, for a boolean mask, blobs) smaller than ``min_size`` pixels to 0."""
    labels = np.asarray(labels)
    if min_size <= 1:
        return labels.copy()
    if labels.dtype == bool:
        components = connected_components(labels)
        sizes = np.bincount(components.ravel())
        return (sizes >= min_size)[components] & labels
    sizes = np.bincount(labels.ravel().astype(np.int64))
    keep = sizes >= min_size
    keep[0] = True
    out = labels.copy()
    out[~keep[labels]] = 0
    return out


def fill_holes(mask: np.ndarray, max_size: int | None = None) -> np.ndarray:
    """Fill background regions enclosed by foreground; only those up to ``max_size`` pixels when given."""
    mask = np.asarray(mask) > 0
    filled = ndi.binary_fill_holes(mask)
    if max_size is None:
        return filled
    holes = filled & ~mask
    hole_labels, _ = ndi.label(holes)
    sizes = np.bincount(hole_labels.ravel())
    small = sizes <= max_size
    small[0] = False
    return mask | small[hole_labels]


def relabel_sequential(labels: np.ndarray) -> np.ndarray:
    """Renumber objects 1..N in order of first appearance (row-major), int32."""
    values, inverse = np.unique(labels, return_inverse=True)
    offset = 0 if values[0] == 0 else 1
    return (inverse.reshape(labels.shape) + offset).astype(np.int32)


def split_touching(mask: np.ndarray, probability: np.ndarray | None = None,
                   config: InstanceConfig = InstanceConfig()) -> np.ndarray:
    """Separate touching objects of a 2-D mask by a seeded watershed; returns int32 labels 1..N.

    Every connected blob keeps at least one seed, so splitting never loses an object.
    """
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    mask = np.asarray(mask) > 0
    if not mask.any():
        return np.zeros(mask.shape, np.int32)
    distance = ndi.distance_transform_edt(mask)
    if config.sigma > 0:
        distance = ndi.gaussian_filter(distance, config.sigma) * mask
    if config.seeds == "probability" and probability is not None:
        distance = distance * np.clip(np.asarray(probability, np.float64), 0.0, 1.0)
    peaks = h_maxima(distance, config.h) & mask
    structure = ndi.generate_binary_structure(2, config.connectivity)
    markers, n_markers = ndi.label(peaks, structure=structure)
    # blobs too thin to reach ``h`` get one seed at their deepest point
    blobs, n_blobs = ndi.label(mask, structure=structure)
    seeded = np.zeros(n_blobs + 1, bool)
    seeded[blobs[markers > 0]] = True
    missing = np.flatnonzero(~seeded[1:]) + 1
    if missing.size:
        positions = ndi.maximum_position(distance, blobs, missing)
        for offset, (row, col) in enumerate(positions, start=1):
            markers[row, col] = n_markers + offset
    labels = watershed(-distance, markers, mask=mask, connectivity=config.connectivity)
    return relabel_sequential(labels)


def find_instances(mask: np.ndarray, probability: np.ndarray | None = None,
                   config: InstanceConfig = InstanceConfig()) -> np.ndarray:
    """Foreground mask (and optional foreground probability) -> int32 instance labels 1..N."""
    mask = np.asarray(mask) > 0
    if config.max_hole_size:
        mask = fill_holes(mask, config.max_hole_size)
    if config.method == "watershed":
        labels = split_touching(mask, probability, config)
    else:
        labels = connected_components(mask, config.connectivity)
    if config.min_size > 1:
        labels = relabel_sequential(remove_small_objects(labels, config.min_size))
    return labels


_PROPERTIES = ("label", "area", "centroid", "bbox", "equivalent_diameter_area", "eccentricity", "solidity",
               "perimeter", "axis_major_length", "axis_minor_length", "orientation", "extent")
_RENAME = {
    "area": "area_px", "centroid-0": "centroid_y_px", "centroid-1": "centroid_x_px",
    "bbox-0": "bbox_min_y", "bbox-1": "bbox_min_x", "bbox-2": "bbox_max_y", "bbox-3": "bbox_max_x",
    "equivalent_diameter_area": "equivalent_diameter_px", "perimeter": "perimeter_px",
    "axis_major_length": "major_axis_px", "axis_minor_length": "minor_axis_px", "orientation": "orientation_rad",
}


def _ascii_unit(unit: str) -> str:
    text = (unit or "").replace("µ", "u").replace("μ", "u").strip()
    return "".join(ch for ch in text if ch.isalnum()) or "unit"


def measure(labels: np.ndarray, intensity: np.ndarray | None = None,
            pixel_size: tuple[float, float] | None = None, unit: str = "") -> dict[str, np.ndarray]:
    """Per-object measurements of a 2-D label image, one row per object, as named columns.

    Pixel columns always (``area_px``, ``centroid_y_px``, bounding box ``bbox_min_y`` .. ``bbox_max_x``
    (max exclusive), ``equivalent_diameter_px``, ``eccentricity``, ``solidity``, ``perimeter_px``,
    ``major_axis_px``, ``minor_axis_px``, ``orientation_rad``, ``extent``); ``mean_intensity`` (or
    ``mean_intensity_cN`` per channel) when ``intensity`` ((Y, X) or (C, Y, X)) is given; with a
    ``pixel_size`` (y, x) in ``unit`` also ``area_<unit>2``, ``centroid_y_<unit>``, ``centroid_x_<unit>``,
    ``equivalent_diameter_<unit>`` and, for square pixels, ``perimeter_<unit>``, ``major_axis_<unit>``,
    ``minor_axis_<unit>``.
    """
    from skimage.measure import regionprops_table

    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ConfigError(f"measure() takes a 2-D label image, got shape {labels.shape}")
    properties = list(_PROPERTIES)
    image = None
    if intensity is not None:
        image = np.asarray(intensity, dtype=np.float64)
        if image.ndim == 3:
            image = np.moveaxis(image, 0, -1)
            if image.shape[-1] == 1:
                image = image[..., 0]
        if image.shape[:2] != labels.shape:
            raise ConfigError(f"intensity image {image.shape[:2]} does not match the labels {labels.shape}")
        properties.append("intensity_mean")
    table = regionprops_table(labels.astype(np.int32, copy=False), intensity_image=image, properties=properties)
    out: dict[str, np.ndarray] = {}
    for key, values in table.items():
        if key.startswith("intensity_mean"):
            name = "mean_intensity" + (f"_c{key.split('-')[1]}" if "-" in key else "")
        else:
            name = _RENAME.get(key, key)
        out[name] = np.asarray(values)
    if pixel_size:
        py, px = (float(v) for v in pixel_size)
        u = _ascii_unit(unit)
        out[f"area_{u}2"] = out["area_px"] * py * px
        out[f"centroid_y_{u}"] = out["centroid_y_px"] * py
        out[f"centroid_x_{u}"] = out["centroid_x_px"] * px
        out[f"equivalent_diameter_{u}"] = np.sqrt(4 * out[f"area_{u}2"] / math.pi)
        if math.isclose(py, px, rel_tol=0.01):
            for name in ("perimeter", "major_axis", "minor_axis"):
                out[f"{name}_{u}"] = out[f"{name}_px"] * py
    return out


def table_to_csv(table: dict[str, np.ndarray], extra: dict[str, object] | None = None) -> str:
    """CSV text of a measurement table; ``extra`` columns (e.g. ``{"slice": 3}``) are prepended."""
    columns = list((extra or {}).keys()) + list(table.keys())
    n_rows = len(next(iter(table.values()))) if table else 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in range(n_rows):
        values = list((extra or {}).values()) + [table[name][row] for name in table]
        writer.writerow([_format(v) for v in values])
    return buffer.getvalue()


def _format(value: object) -> str:
    if isinstance(value, (np.integer, int)):
        return str(int(value))
    if isinstance(value, (np.floating, float)):
        return f"{float(value):.6g}"
    return str(value)


def write_measurements_csv(path: str | os.PathLike, tables: Sequence[tuple[dict[str, object], dict[str, np.ndarray]]]) -> None:
    """Write one CSV (atomically) from ``(extra_columns, table)`` parts, e.g. one part per slice."""
    parts = [table_to_csv(table, extra) for extra, table in tables]
    header = parts[0].split("\n", 1)[0] if parts else "label"
    body = "".join(part.split("\n", 1)[1] for part in parts)
    write_text(path, header + "\n" + body)


def foreground_classes(class_values: Sequence[int], class_names: Sequence[str],
                       chosen: Sequence[int] = ()) -> list[int]:
    """Indices of the classes whose pixels make up objects (instances and measurements).

    Parameters
    ----------
    class_values, class_names : sequence
        The model's classes (``ModelInfo.class_values`` and ``.class_names``).
    chosen : sequence of int, optional
        Class values chosen by the person; empty: every class but the background (the class named
        "background", else the one of value 0, else the first).

    Raises
    ------
    ConfigError
        A chosen value is not a class value of the model.
    """
    values = [int(v) for v in class_values]
    if chosen:
        wanted = {int(c) for c in chosen}
        missing = sorted(wanted - set(values))
        if missing:
            raise ConfigError(f"the foreground values {missing} are not class values of this model ({values}); "
                              "choose among those")
        return [k for k, v in enumerate(values) if v in wanted]
    names = [str(n).lower() for n in class_names]
    if "background" in names:
        background = names.index("background")
    elif 0 in values:
        background = values.index(0)
    else:
        background = 0
    return [k for k in range(len(values)) if k != background]


def label_dtype(class_values: Sequence[int]) -> np.dtype:
    """Smallest unsigned integer type that holds the class values (int32 for negative ones)."""
    values = [int(v) for v in class_values] or [0]
    if min(values) < 0:
        return np.dtype(np.int32)
    if max(values) <= 255:
        return np.dtype(np.uint8)
    return np.dtype(np.uint16) if max(values) <= 65535 else np.dtype(np.uint32)


def probabilities_to_labels(probs: np.ndarray, class_values: Sequence[int],
                            thresholds: Sequence[float] = ()) -> np.ndarray:
    """Label image (Y, X) from (K, Y, X) probabilities, in the model's class values.

    Without thresholds: the most probable class. With per-class ``thresholds`` (K values; 0 = none for
    that class): a class with a threshold is chosen wherever its probability reaches the threshold (the
    one furthest above its threshold wins), is never chosen where it does not, and the remaining pixels
    take the most probable class without a threshold (the first class if every class has one).
    """
    probs = np.asarray(probs)
    probs = probs.astype(np.float32) / 255.0 if probs.dtype == np.uint8 and thresholds else probs  # 0..255 scale
    k = probs.shape[0]
    if len(class_values) != k:
        raise ConfigError(f"{k} probability channels but {len(class_values)} class values")
    if thresholds:
        if len(thresholds) != k:
            raise ConfigError(f"give one threshold per class ({k}), got {len(thresholds)}")
        scores = probs.astype(np.float32, copy=True)
        for c, t in enumerate(thresholds):
            if t and t > 0:
                passing = probs[c] >= t
                scores[c] = np.where(passing, 2.0 + probs[c] - t, -1.0)
        index = np.argmax(scores, axis=0)
    else:
        index = np.argmax(probs, axis=0)
    lut = np.asarray(class_values, dtype=label_dtype(class_values))
    return lut[index]


def calibrated_overlay_thresholds(thresholds: Sequence[float], n_classes: int) -> list[float] | None:
    """Per-class display thresholds for a two-class model's calibrated ``[t, 0]`` or ``[0, t]``.

    Parameters
    ----------
    thresholds
        The thresholds a model chose on its validation data (see :func:`probabilities_to_labels`).
    n_classes
        Number of classes the display shows.

    Returns
    -------
    list of float or None
        ``t`` for the calibrated class and ``1 - t`` for the other (the same decision seen from either
        class), or None when there is nothing to adopt (not two classes, or no threshold chosen).
    """
    if n_classes != 2 or len(thresholds) != 2 or not any(t > 0 for t in thresholds):
        return None
    k = 0 if thresholds[0] > 0 else 1
    shown = [0.0, 0.0]
    shown[k] = float(thresholds[k])
    shown[1 - k] = round(1.0 - float(thresholds[k]), 4)
    return shown
