"""Objects on screen: the objects of the visible slice's prediction, made off the GUI thread.

When the prediction is shown as "Objects", the visible slice's probabilities become objects through
:func:`unet_studio.core.predict.objects_of_slice` (the same path as File > Export and
``unet-studio predict --instances``: the model's instance mode, its foreground classes, the thresholds of the
display) and are measured with :func:`unet_studio.core.predict.measure` (in the image's calibration). That
work runs in a :class:`~.controllers.workers.GeneratorWorker`; a newer request made while one runs waits
for it and replaces any older waiting one, so live previews during training never queue up. ``ready``
announces a result; :meth:`result` gives it when it still matches what is shown.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6 import QtCore

from ..core.predict import (InstanceConfig, THREE_CLASS_NAMES, foreground_classes, measure, objects_of_slice,
                            resolve_instance_mode)
from .calibration import image_calibration
from .controllers.workers import GeneratorWorker

if TYPE_CHECKING:
    from .session import Session

log = logging.getLogger(__name__)

__all__ = ["ObjectsLayer", "SliceObjects", "describe_object", "object_colors", "objects_display"]

#: Colours of objects on screen: index 0 is transparent, 1..254 cycle through object labels, 255 outlines.
N_COLORS = 254


@dataclass(frozen=True)
class SliceObjects:
    """Objects of one slice's prediction and their measurements (one row per object, label order)."""

    image_index: int
    slice_index: int
    probs: np.ndarray        # the prediction they were made from (identity tells whether it is still shown)
    thresholds: tuple
    objects: np.ndarray      # (Y, X) int32, 0 = none
    table: dict[str, np.ndarray]

    @property
    def count(self) -> int:
        return len(next(iter(self.table.values()))) if self.table else 0

    def row(self, label: int) -> dict[str, float] | None:
        """The measurements of object ``label``, or None when there is no such object."""
        labels = self.table.get("label")
        if labels is None:
            return None
        where = np.flatnonzero(labels == label)
        if not where.size:
            return None
        return {key: values[where[0]].item() for key, values in self.table.items()}


def describe_object(row: dict[str, float], count: int) -> str:
    """Lines of text on one object's measurements (a row of :func:`~unet_studio.core.predict.measure`)."""
    lines = [f"Object {int(row['label'])} of {count}"]
    area_unit = next((k for k in row if k.startswith("area_") and k.endswith("2") and k != "area_px"), None)
    area = f"area {int(row['area_px'])} px"
    if area_unit:
        area += f" = {row[area_unit]:.4g} {area_unit[5:-1]}²"
    lines.append(area)
    lines.append(f"centre x {row['centroid_x_px']:.1f}, y {row['centroid_y_px']:.1f}")
    lines.append(f"diameter {row['equivalent_diameter_px']:.1f} px, eccentricity {row['eccentricity']:.2f}, "
                 f"solidity {row['solidity']:.2f}")
    means = [(k, v) for k, v in row.items() if k.startswith("mean_intensity")]
    if means:
        lines.append(", ".join(f"{k.replace('_', ' ')} {v:.4g}" for k, v in means))
    return "\n".join(lines)


def object_colors(seed: int = 7) -> np.ndarray:
    """A (256, 4) uint8 LUT: 0 transparent, 1..254 distinct saturated colours, 255 white (outlines)."""
    import colorsys

    rng = np.random.default_rng(seed)
    hues = (np.arange(N_COLORS) * 0.618033988749895) % 1.0  # golden-ratio steps: neighbours differ
    lut = np.zeros((256, 4), np.uint8)
    for i, hue in enumerate(hues):
        r, g, b = colorsys.hsv_to_rgb(hue, 0.55 + 0.45 * rng.random(), 0.75 + 0.25 * rng.random())
        lut[i + 1] = (int(r * 255), int(g * 255), int(b * 255), 255)
    lut[255] = (255, 255, 255, 255)
    return lut


def objects_display(objects: np.ndarray) -> np.ndarray:
    """(Y, X) uint8 image of ``objects`` for :func:`object_colors`: each object its colour, outlines 255."""
    from skimage.segmentation import find_boundaries

    objects = np.asarray(objects)
    image = np.where(objects > 0, (objects - 1) % N_COLORS + 1, 0).astype(np.uint8)
    image[find_boundaries(objects, mode="inner") & (objects > 0)] = 255
    return image


def _compute(request: dict):
    """The worker's generator: one :class:`SliceObjects`."""
    objects = objects_of_slice(request["probs"], list(request["thresholds"]), request["foreground"],
                               request["mode"], InstanceConfig())
    table = measure(objects, request["raw"], request["pixel_size"], request["unit"])
    yield SliceObjects(request["image_index"], request["slice_index"], request["probs"], request["thresholds"],
                       objects, table)


class ObjectsLayer(QtCore.QObject):
    """Objects of the visible prediction, computed in a worker thread.

    Signals
    -------
    ready(int, int)
        Objects of (image, slice) are available from :meth:`result`.
    failed(str)
        Making objects failed (the message says why); the overlay then shows none.
    """

    ready = QtCore.Signal(int, int)
    failed = QtCore.Signal(str)

    def __init__(self, session: Session, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self._latest: SliceObjects | None = None
        self._worker: GeneratorWorker | None = None
        self._waiting: dict | None = None
        self._model_info: tuple[Path | None, float, object] | None = None

    # ------------------------------------------------------------------ what the model says

    def _info(self):
        """The model folder's ModelInfo (re-read when model.json changes), or None without a model."""
        from ..core.model import read_model_info

        folder = self.session.model_dir
        if folder is None:
            return None
        try:
            stamp = (Path(folder) / "model.json").stat().st_mtime
        except OSError:
            return None
        if self._model_info is None or self._model_info[:2] != (folder, stamp):
            try:
                self._model_info = (folder, stamp, read_model_info(folder)[0])
            except Exception as exc:  # noqa: BLE001 - a damaged model.json: objects by the session's classes
                log.info("objects: cannot read %s (%s)", folder, exc)
                self._model_info = (folder, stamp, None)
        return self._model_info[2]

    def _how(self, n_classes: int) -> tuple[list[int], str]:
        """(foreground channel indices, instance mode) for a prediction of ``n_classes`` channels."""
        names = [c.name for c in self.session.classes][:n_classes]
        values = list(range(n_classes))
        extra = None
        info = self._info()
        if info is not None and len(info.class_names) == n_classes:
            names, values, extra = list(info.class_names), list(info.class_values), info.extra
        if len(names) < n_classes:
            names += [f"class {k + 1}" for k in range(len(names), n_classes)]
        if extra is None and tuple(names) == THREE_CLASS_NAMES:
            extra = {"instance_output": {"mode": "three_class"}}
        # A painted boundary class counts as background for objects (it was trained as background).
        boundary = {k for k, c in enumerate(self.session.classes) if getattr(c, "boundary", False)}
        foreground = [k for k in foreground_classes(values, names) if k not in boundary]
        return foreground, resolve_instance_mode("auto", names, extra)

    # ------------------------------------------------------------------ requests and results

    def result(self, image_index: int, slice_index: int, probs: np.ndarray | None,
               thresholds) -> SliceObjects | None:
        """The objects of (image, slice) when they were made from ``probs`` with ``thresholds``, else None."""
        latest = self._latest
        if latest is None or probs is None:
            return None
        if (latest.image_index, latest.slice_index) != (image_index, slice_index) or latest.probs is not probs \
                or latest.thresholds != tuple(thresholds):
            return None
        return latest

    def request(self, image_index: int, slice_index: int, probs: np.ndarray, thresholds) -> None:
        """Make the objects of a slice from ``probs`` (K, Y, X) in the background (never blocks)."""
        if self.result(image_index, slice_index, probs, thresholds) is not None:
            return
        session = self.session
        foreground, mode = self._how(len(probs))
        pixel_size, unit, _ = image_calibration(session.images[image_index])
        request = {"image_index": image_index, "slice_index": slice_index, "probs": probs,
                   "thresholds": tuple(thresholds), "foreground": foreground, "mode": mode,
                   "raw": session.slices.raw(image_index, slice_index), "pixel_size": pixel_size, "unit": unit}
        if self._worker is not None and self._worker.is_running():
            self._waiting = request  # replaces an older waiting request: only the newest matters
            return
        self._start(request)

    def _start(self, request: dict) -> None:
        worker = GeneratorWorker(lambda: _compute(request), self)
        worker.yielded.connect(self._on_result)
        worker.errored.connect(lambda message, _details: self.failed.emit(message))
        worker.finished.connect(self._on_finished)
        self._worker = worker
        worker.start()

    def _on_result(self, item: SliceObjects) -> None:
        self._latest = item
        self.ready.emit(item.image_index, item.slice_index)

    def _on_finished(self) -> None:
        self._worker = None
        request, self._waiting = self._waiting, None
        if request is not None:
            self._start(request)

    def shutdown(self) -> None:
        """Stop waiting work and wait for a running computation (application close, tests)."""
        self._waiting = None
        if self._worker is not None:
            self._worker.stop_and_wait()
