"""Prediction to files: every output of one image, written by one generator that both front ends run.

:func:`export_image` predicts an image slice by slice and writes, into a folder:

- ``NAME_labels.tif``: the most probable class per pixel (after the thresholds), in the model's class values;
- ``NAME_probabilities.tif``: float32 softmax, one channel per class (named after the classes);
- ``NAME_instances.tif``: one number per object (per slice), objects made of every class but the background
  unless chosen (:func:`~unet_studio.core.predict.postprocess.foreground_classes`);
- ``NAME_measurements.csv``: one row per object, a ``slice`` column for stacks, physical units when the image
  is calibrated.

Outputs keep the input's stack axis (ImageJ ``frames`` for a time-lapse, ``slices`` for Z), its pixel size
and unit. Stacks stream through memory-mapped TIFFs, so no output has to fit in memory; every file appears
atomically when the image is done, and stopping the generator (or an error) leaves nothing behind. With
``ExportConfig(format="zarr")`` the images are OME-Zarr folders (``NAME_labels.ome.zarr``, ...) with a
multiscale pyramid, written slice by slice into a temporary folder beside the target and renamed when done.
``unet-studio predict`` and the application's File > Export both call it, so they write the same bytes.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..config import InferConfig
from ..errors import InferenceError
from ..io import atomic_path, micrometres, ome_zarr_output, pixel_warning, tiff_memmap
from ..model import ModelInfo
from .instances import objects_of_slice, resolve_instance_mode
from .postprocess import (
    InstanceConfig,
    foreground_classes,
    label_dtype,
    measure,
    probabilities_to_labels,
    table_to_csv,
)
from .tiled import Predictor, check_slice_memory, eta_from, iter_predict_stack, make_normalizer, slice_fraction

OUTPUT_SUFFIXES = {
    "labels": "_labels.tif",
    "probabilities": "_probabilities.tif",
    "instances": "_instances.tif",
    "measurements": "_measurements.csv",
}
"""The file name of each output is ``NAME`` + its suffix."""

ZARR_OUTPUT_SUFFIXES = {
    "labels": "_labels.ome.zarr",
    "probabilities": "_probabilities.ome.zarr",
    "instances": "_instances.ome.zarr",
    "measurements": "_measurements.csv",
}
"""The names of the outputs written as OME-Zarr (``ExportConfig(format="zarr")``)."""

OUTPUT_FORMATS = ("tiff", "zarr")


@dataclass(frozen=True)
class ExportConfig:
    """Which outputs to write, and how objects are made.

    labels, probabilities, instances, measurements
        Write that output (see the module docs).
    foreground
        Class values whose pixels make objects; empty: every class but the background.
    instance
        How a foreground mask becomes objects (watershed splitting, smallest object, ...).
    instance_mode
        ``"auto"``: as the model says (interior seeds for a three-class instance model, else the distance
        transform of the foreground), or ``"three_class"`` / ``"distance"`` (see
        :func:`~unet_studio.core.predict.instances.objects_from_probabilities`).
    pixel_size, unit
        The calibration ``(y, x)`` in ``unit`` to use when the image file has none (a pixel size the
        person set in the project); the file's own calibration always wins.
    format
        ``"tiff"`` (memory-mapped TIFFs) or ``"zarr"`` (OME-Zarr images with a multiscale pyramid, labels
        and instances downsampled by the mode, probabilities by the mean; NGFF 0.5).
    labels_as_name
        Write the labels to ``NAME.ome.zarr`` itself (an ``--out NAME.ome.zarr`` the person named) instead of
        ``NAME_labels.ome.zarr``; the other outputs keep their suffixes.
    """

    labels: bool = True
    probabilities: bool = False
    instances: bool = False
    measurements: bool = False
    foreground: tuple[int, ...] = ()
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    instance_mode: str = "auto"
    pixel_size: tuple[float, float] | None = None
    unit: str = ""
    format: str = "tiff"
    labels_as_name: bool = False

    @property
    def outputs(self) -> tuple[str, ...]:
        """The chosen outputs, in the order of :data:`OUTPUT_SUFFIXES`."""
        return tuple(key for key in OUTPUT_SUFFIXES if getattr(self, key))


def output_paths(folder: str | Path, name: str, config: ExportConfig = ExportConfig()) -> dict[str, Path]:
    """``{output: folder / (name + suffix)}`` for the outputs ``config`` chooses (and its format)."""
    if config.format not in OUTPUT_FORMATS:
        raise ValueError(f"format must be one of {', '.join(OUTPUT_FORMATS)}, not {config.format!r}")
    suffixes = dict(ZARR_OUTPUT_SUFFIXES if config.format == "zarr" else OUTPUT_SUFFIXES)
    if config.labels_as_name and config.format == "zarr":
        suffixes["labels"] = ".ome.zarr"
    return {key: Path(folder) / f"{name}{suffixes[key]}" for key in config.outputs}


@dataclass
class ExportProgress:
    """One step of :func:`export_image`: after each batch of tiles, and once more at the end.

    ``outputs`` (the files written) and ``warnings`` (about the pixels: NaN values, a constant image) are set
    on the last item only.
    """

    slice_index: int
    slices_total: int
    tiles_done: int
    tiles_total: int
    elapsed_s: float
    outputs: dict[str, Path] | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def fraction(self) -> float:
        """Progress over the whole image, in [0, 1]."""
        if self.outputs is not None:
            return 1.0
        return slice_fraction(self.tiles_done, self.tiles_total, self.slice_index, self.slices_total)

    @property
    def eta_s(self) -> float | None:
        """Seconds left, from the rate so far (``None`` before the first batch)."""
        return eta_from(self.elapsed_s, self.fraction)


def export_image(model: torch.nn.Module, info: ModelInfo, stack: Any, folder: str | Path, name: str,
                 config: ExportConfig = ExportConfig(), infer: InferConfig = InferConfig(),
                 predictor: Predictor | None = None) -> Iterator[ExportProgress]:
    """Predict an image and write its outputs into ``folder``, yielding progress.

    Parameters
    ----------
    model, info : torch.nn.Module, ModelInfo
        The model and its folder's description (class values and names, input normalisation).
    stack : ImageStack
        The open image (:func:`~unet_studio.core.io.read_image`).
    folder : str or Path
        Where the outputs go (an existing, writable folder).
    name : str
        The outputs' base name (``NAME_labels.tif``, ...).
    config : ExportConfig
        Which outputs, and how objects are made.
    infer : InferConfig
        Tiling, thresholds, test-time augmentation.
    predictor : callable, optional
        Replaces the network's forward pass (see :data:`~unet_studio.core.predict.tiled.Predictor`).

    Yields
    ------
    ExportProgress
        After each batch of tiles; the last one names the files written.

    Raises
    ------
    InferenceError
        The image does not fit the model, a slice does not fit in memory, or the model gives NaN.
    ImageWriteError
        An output cannot be written; no partial file is left.
    """
    path = Path(getattr(stack, "path", name))
    _check_fits(stack, info, path)
    n_slices = stack.shape[0]
    foreground = foreground_classes(info.class_values, info.class_names, config.foreground)
    mode = resolve_instance_mode(config.instance_mode, info.class_names, info.extra)
    targets = output_paths(folder, name, config)
    prepare = _SlicePreparer(info.normalization)
    start = time.perf_counter()
    with _Outputs(targets, stack, info, config) as out:
        for progress in iter_predict_stack(model, stack, infer, prepare=prepare, predictor=predictor):
            yield ExportProgress(progress.slice_index, n_slices, progress.tiles_done, progress.tiles_total,
                                 time.perf_counter() - start)
            if progress.result is not None:
                probs = progress.result
                if not np.isfinite(probs).all():
                    raise InferenceError(f"'{path}': the model gave NaN or infinite probabilities"
                                         f"{out.where(progress.slice_index)}; check the model (train it again) "
                                         "and the image's pixel values")
                out.write_slice(progress.slice_index, probs, prepare.raw, infer.thresholds, foreground,
                                config.instance, mode)
    yield ExportProgress(n_slices - 1, n_slices, 1, 1, time.perf_counter() - start, targets,
                         prepare.warnings(n_slices))


def _check_fits(stack: Any, info: ModelInfo, path: Path) -> None:
    """Refuse an image the model cannot take, before the outputs take their space on disk."""
    _, channels, height, width = stack.shape
    expected = info.model_config.in_channels
    if channels != expected:
        raise InferenceError(f"'{path}' has {channels} channel{'s' * (channels != 1)} but the model expects "
                             f"{expected}; use a model trained on images like this one")
    # A slice too large for the memory is refused.
    check_slice_memory((channels, height, width), info.model_config.n_classes, stack.dtype.itemsize, path)


class _SlicePreparer:
    """Normalises each raw slice for the network; keeps the last raw slice (for measurements) and warnings."""

    def __init__(self, normalization) -> None:
        self.normalize = make_normalizer(normalization)
        self.raw: np.ndarray | None = None
        self.flagged: list[str] = []

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        self.raw = raw
        problem = pixel_warning(raw)
        if problem:
            self.flagged.append(problem)
        return self.normalize(raw)

    def warnings(self, n_slices: int) -> list[str]:
        """The first pixel warning, with how many slices had one (for a stack)."""
        if not self.flagged:
            return []
        return [self.flagged[0] + (f" (in {len(self.flagged)} of {n_slices} slices)" if n_slices > 1 else "")]


class _Outputs(contextlib.ExitStack):
    """The open output files of one image: memory-mapped TIFFs and the CSV's temporary file."""

    def __init__(self, targets: dict[str, Path], stack: Any, info: ModelInfo, config: ExportConfig) -> None:
        super().__init__()
        self.targets = targets
        self.stack = stack
        self.info = info
        # The file's calibration, else the one the person set: measurements come in physical units.
        if stack.pixel_size is not None:
            self.pixel_size, self.unit = stack.pixel_size, stack.unit
        else:
            self.pixel_size, self.unit = config.pixel_size, config.unit if config.pixel_size else ""
        self.maps: dict[str, np.ndarray] = {}
        self.zarr = config.format == "zarr"
        self.channel_axis: dict[str, int] = {}  # where a zarr output keeps its stack axis after "c" (NGFF order)
        self.csv_parts: list[str] = []
        self.csv_tmp: Path | None = None

    def __enter__(self) -> _Outputs:
        super().__enter__()
        n_slices, _, height, width = self.stack.shape
        self.lead = (n_slices,) if n_slices > 1 else ()
        # A time-lapse stays a time-lapse (ImageJ frames), anything else is a Z-stack (ImageJ slices).
        axis = ("T" if self.stack.stack_axes == "T" else "Z") if self.lead else ""
        calib = {"pixel_size": self.pixel_size, "unit": self.unit or None}
        k = self.info.model_config.n_classes
        plane = (height, width)
        if "labels" in self.targets:
            self._map("labels", self.lead + plane, label_dtype(self.info.class_values), axis + "YX", calib)
        if "probabilities" in self.targets:
            metadata = {"mode": "grayscale", "min": 0.0, "max": 1.0,
                        "Labels": [str(n) for n in self.info.class_names] * max(1, n_slices)}
            self._map("probabilities", self.lead + (k,) + plane, np.float32, axis + "CYX", calib, metadata)
        if "instances" in self.targets:
            dtype = np.uint16 if height * width <= 65535 * 16 else np.uint32
            self._map("instances", self.lead + plane, dtype, axis + "YX", calib)
        if "measurements" in self.targets:
            self.csv_tmp = self.enter_context(atomic_path(self.targets["measurements"]))
        return self

    def __exit__(self, *exc_info) -> bool:
        try:
            if exc_info[0] is None and self.csv_tmp is not None:
                self.csv_tmp.write_text("".join(self.csv_parts), encoding="utf-8")
            if exc_info[0] is None:
                for data in self.maps.values():
                    if hasattr(data, "flush"):  # a memory-mapped TIFF; a zarr array writes at assignment
                        data.flush()
        finally:
            self.maps.clear()  # the maps must be gone before tiff_memmap moves their files into place
        return super().__exit__(*exc_info)

    def _map(self, key: str, shape: tuple[int, ...], dtype, axes: str, calib: dict,
             metadata: dict | None = None) -> None:
        if self.zarr:
            self._zarr_map(key, shape, dtype, axes.lower())
            return
        self.maps[key] = self.enter_context(tiff_memmap(self.targets[key], shape, dtype, axes, **calib,
                                                        metadata=metadata))

    def _zarr_map(self, key: str, shape: tuple[int, ...], dtype, axes: str) -> None:
        # NGFF orders the axes t, c, z, y, x: a Z-stack of probabilities is "czyx", its slices along axis 1.
        if axes == "zcyx":
            axes, shape = "czyx", (shape[1], shape[0]) + shape[2:]
            self.channel_axis[key] = 1
        pixel = None
        if self.pixel_size is not None:
            pixel = micrometres(self.pixel_size[0], self.unit), micrometres(self.pixel_size[1], self.unit)
            pixel = None if None in pixel else pixel
        names = [str(n) for n in self.info.class_names] if key == "probabilities" else None
        kind = "probabilities" if key == "probabilities" else "labels"
        self.maps[key] = self.enter_context(ome_zarr_output(self.targets[key], shape, dtype, axes, kind, pixel,
                                                            names, overwrite=True))

    def _put(self, key: str, index: tuple, value: np.ndarray) -> None:
        if key in self.channel_axis:
            self.maps[key][(slice(None),) + index] = value
        else:
            self.maps[key][index or ...] = value

    def where(self, slice_index: int) -> str:
        return f" in slice {slice_index + 1}" if self.lead else ""

    def write_slice(self, slice_index: int, probs: np.ndarray, raw: np.ndarray, thresholds, foreground: list[int],
                    instance_config: InstanceConfig, mode: str = "distance") -> None:
        """Labels, probabilities, objects and measurements of one slice."""
        index = (slice_index,) if self.lead else ()
        if "labels" in self.maps:
            self._put("labels", index, probabilities_to_labels(probs, self.info.class_values, thresholds))
        if "probabilities" in self.maps:
            self._put("probabilities", index, probs)
        if "instances" not in self.maps and self.csv_tmp is None:
            return
        objects = objects_of_slice(probs, thresholds, foreground, mode, instance_config)
        if "instances" in self.maps:
            target = self.maps["instances"]
            if objects.max(initial=0) > np.iinfo(target.dtype).max:
                raise InferenceError(f"'{self.stack.path}': too many objects ({objects.max()}) for the instance image")
            self._put("instances", index, objects)
        if self.csv_tmp is not None:
            table = measure(objects, raw, self.pixel_size, self.unit)
            part = table_to_csv(table, {"slice": slice_index} if self.lead else None)
            self.csv_parts.append(part if not self.csv_parts else part.split("\n", 1)[1])


__all__ = ["ExportConfig", "ExportProgress", "OUTPUT_FORMATS", "OUTPUT_SUFFIXES", "ZARR_OUTPUT_SUFFIXES", "export_image",
           "output_paths"]
