"""Prediction and export from the application, in a background worker.

``predict(scope)`` runs tiled inference with the project's model over the current slice, the current
image or every image; each finished slice lands in the session's probability overlay. ``export(...)``
writes the CLI's outputs (``NAME_labels.tif``, ``NAME_probabilities.tif``, ``NAME_instances.tif``,
``NAME_measurements.csv``) through the same core function as ``unet-studio predict``
(:func:`~unet_studio.core.predict.export_image`), the painted labels (``NAME_annotations.tif``) and a copy
of the model folder. The worker loads its own model and opens its own copy of each image file; the GUI
thread only copies what it hands over.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PySide6 import QtCore

from ...core.errors import ImageWriteError, ModelFileError, UNetStudioError
from ...core.io import check_writable, describe_write_error
from ..big_image.predict import BigPrediction, predict_big, prediction_path
from ..big_image.source import is_big
from ..session import Session
from .warmup import gui_compute_threads
from .workers import GeneratorWorker

log = logging.getLogger(__name__)

SCOPES = ("slice", "image", "all")
EXPORTS = ("labels", "probabilities", "instances", "measurements", "annotations", "model")


@dataclass
class _Step:
    done: float
    total: int
    text: str = ""


@dataclass
class _Result:
    image_index: int
    slice_index: int
    probs: np.ndarray  # (K, Y, X) uint8


@dataclass
class _BigResult:
    image_index: int
    step: BigPrediction  # its last step: the labels written, or the blocks that failed


def _load_model(model_dir: Path, n_classes: int):
    from ...core.device import configure_cpu_threads, select_device
    from ...core.model import load_model

    device = select_device("auto")
    if device.type == "cpu":
        configure_cpu_threads(gui_compute_threads())
    model, info = load_model(model_dir, device)
    if info.model_config.n_classes != n_classes:
        raise ModelFileError(
            f"the project's model predicts {info.model_config.n_classes} classes but the project has "
            f"{n_classes}; train again to get a model for the current classes")
    return model, info


def _predict_slices(model, info, stack, slices, progress_base, total):
    """Yield _Step and (slice index, (K, Y, X) float32) for each slice of ``stack``."""
    from ...core.predict import iter_predict, make_normalizer

    normalize = make_normalizer(info.normalization)
    for n, slice_index in enumerate(slices):
        image = normalize(stack.get_slice(slice_index))
        for item in iter_predict(model, image):
            fraction = item.tiles_done / max(item.tiles_total, 1)
            yield _Step(progress_base + n + fraction, total)
            if item.result is not None:
                yield slice_index, item.result


class PredictionController(QtCore.QObject):
    """Runs one prediction or export at a time."""

    busy_changed = QtCore.Signal(bool)
    big_predicted = QtCore.Signal(int, str)    # image index, its predicted labels (OME-Zarr) of a big image
    progressed = QtCore.Signal(int, int)       # done, total (slices)
    finished = QtCore.Signal(str)              # a short summary for the status bar
    failed = QtCore.Signal(str, str)           # message, details

    def __init__(self, session: Session, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.worker: GeneratorWorker | None = None
        self._summary = ""
        self._count = 0
        self.activity = "Prediction"  # what runs (or ran last): names the failure the window shows
        self.dask_address = ""  # where big images are predicted (gui/big_image/dask_choice.py); "": here

    def is_running(self) -> bool:
        return self.worker is not None and self.worker.is_running()

    def targets(self, scope: str) -> list[tuple[int, list[int]]]:
        """(image index, slice indices) to predict for ``scope`` ("slice", "image" or "all")."""
        session = self.session
        if session.current is None:
            return []
        if scope == "slice":
            return [(session.current_index, [session.current_slice])]
        if scope == "image":
            return [(session.current_index, list(range(session.current.n_slices)))]
        return [(i, list(range(state.n_slices))) for i, state in enumerate(session.images)]

    def scope_choices(self) -> list[tuple[str, str]]:
        """(scope, what it runs on, in words) for "Predict all": this slice, this stack, all images."""
        session, state = self.session, self.session.current
        if state is None:
            return []
        if state.n_slices > 1:
            choices = [("slice", f"This slice ({state.name}, slice {session.current_slice + 1} of {state.n_slices})"),
                       ("image", f"This stack ({state.name}, all {state.n_slices} slices)")]
        else:
            choices = [("image", f"This image ({state.name})")]
        if len(session.images) > 1:
            total = sum(image.n_slices for image in session.images)
            choices.append(("all", f"All {len(session.images)} images of the project ({total} slices)"))
        return choices

    def predict_chosen(self, choose) -> None:
        """Predict the images the person chooses ("Predict all"), saying which they are.

        With one image in the project, all its slices are predicted without a question; with several,
        ``choose(title, text, options, default)`` (a dialog; tests pass a function) returns one of the
        options of :meth:`scope_choices` (all images by default) or None to cancel. Raises
        UNetStudioError when there is no model.
        """
        if self.is_running():
            return
        self._model_dir()  # no model: say so before asking anything
        choices = self.scope_choices()
        if not choices:
            return
        if len(self.session.images) == 1:
            self.predict("image")
            return
        names = [image.name for image in self.session.images]
        listed = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
        answer = choose("Predict which images?", f"Run the project's model on which images?\n\nImages of the "
                        f"project: {listed}.", [text for _, text in choices], choices[-1][1])
        scope = next((scope for scope, text in choices if text == answer), None)
        if scope is not None:
            self.predict(scope)

    def big_prediction_of(self, image_index: int) -> str | None:
        """The predicted labels (OME-Zarr) of a big image in the project folder, when it was predicted."""
        session = self.session
        if not 0 <= image_index < len(session.images) or session.folder is None \
                or not is_big(session.images[image_index].stack):
            return None
        path = prediction_path(session.folder, session.images[image_index].name)
        return str(path) if (path / "zarr.json").is_file() or (path / ".zattrs").is_file() else None

    def _model_dir(self) -> Path:
        model_dir = self.session.model_dir
        if model_dir is None:
            raise ModelFileError("the project has no model yet: paint some labels and press Train first")
        return model_dir

    # ------------------------------------------------------------------ predict

    def predict(self, scope: str = "all") -> None:
        """Predict ``scope`` in the background; raises UNetStudioError when there is no model."""
        if self.is_running():
            return
        model_dir, n_classes = self._model_dir(), len(self.session.classes)
        self.activity = "Prediction"
        jobs = [(i, self.session.images[i].entry.path, slices) for i, slices in self.targets(scope)]
        total = sum(len(slices) for _, _, slices in jobs)
        big = {i: prediction_path(self.session.ensure_folder(), self.session.images[i].name)
               for i, _, _ in jobs if is_big(self.session.images[i].stack)}  # predicted blockwise, into the project
        address = self.dask_address

        def run() -> Iterator:
            from ...core.io import read_image
            from ...core.predict import probabilities_to_uint8

            model, info = _load_model(model_dir, n_classes)
            base = 0
            for image_index, path, slices in jobs:
                if image_index in big:
                    for step in predict_big(model_dir, info, path, big[image_index], address=address):
                        yield _Step(base + len(slices) * step.done / max(step.total, 1), total)
                        if step.labels is not None or step.failures:
                            yield _BigResult(image_index, step)
                    base += len(slices)
                    continue
                with read_image(path) as stack:
                    for item in _predict_slices(model, info, stack, slices, base, total):
                        if isinstance(item, _Step):
                            yield item
                        else:
                            yield _Result(image_index, item[0], probabilities_to_uint8(item[1]))
                base += len(slices)

        self._start(run, f"predicted {total} slice(s)")

    # ------------------------------------------------------------------ export

    def export(self, folder: str | Path, what: set[str] | None = None, scope: str = "image",
               thresholds: list[float] | None = None, tta: bool = False) -> None:
        """Write the chosen outputs (see ``EXPORTS``) of the current image or all images into ``folder``.

        Labels, probabilities, instances and measurements are written by
        :func:`~unet_studio.core.predict.export_image`, as ``unet-studio predict`` writes them (the same
        bytes for the same model and image): the image is predicted again with the project's model, since
        the overlay keeps only a compact preview of the probabilities.
        """
        if self.is_running():
            return
        what = set(EXPORTS if what is None else what)
        self.activity = "Export"
        folder = Path(folder)
        session = self.session
        config = _export_config(what)
        model_dir = self._model_dir() if config.outputs or "model" in what else None
        n_classes = len(session.classes)
        jobs, calibration = [], {}
        for image_index, slices in self.targets("all" if scope == "all" else "image"):
            state = session.images[image_index]
            if is_big(state.stack):  # the export path reads whole slices: a big image's never fits in memory
                raise UNetStudioError(
                    f"{state.name} is a big image: Export does not write big images yet; use Predict all (its labels "
                    f"go to predictions/{state.name}_labels.ome.zarr in the project folder) or 'unet-studio predict "
                    "--dask' for labels, probabilities, objects and measurements")
            calibration[state.name] = {"pixel_size": state.entry.pixel_size, "unit": state.entry.unit}
            jobs.append((state.name, state.entry.path, len(slices),
                         state.labels.data.copy() if "annotations" in what else None))
        total = max(sum(job[2] for job in jobs), 1)
        check_writable(folder, "the export folder")  # a read-only folder: say so now, not after predicting
        use = tuple(thresholds) if thresholds and len(thresholds) == n_classes else ()

        def run() -> Iterator:
            from ...core.config import InferConfig
            from ...core.io import read_image
            from ...core.predict import export_image

            model = info = None
            base = 0
            for name, path, n_slices, annotations in jobs:
                with read_image(path) as stack:
                    if annotations is not None:
                        _write_annotations(folder / f"{name}_annotations.tif", annotations, stack)
                    if config.outputs:
                        if model is None:
                            model, info = _load_model(model_dir, n_classes)
                        for step in export_image(model, info, stack, folder, name,
                                                 replace(config, **calibration[name]),
                                                 InferConfig(thresholds=use, tta=tta)):
                            yield _Step(base + step.fraction * n_slices, total, name)
                base += n_slices
                yield _Step(base, total, name)
            if "model" in what and model_dir is not None:
                _copy_model(model_dir, folder / "model")

        self._start(run, f"exported to {folder}")

    # ------------------------------------------------------------------ running

    def _start(self, run, summary: str) -> None:
        self._summary = summary
        self.worker = GeneratorWorker(run, self)
        self.worker.yielded.connect(self._on_item)
        self.worker.errored.connect(self._on_error)
        self.worker.finished.connect(self._on_finished)
        self.worker.start()
        self.busy_changed.emit(True)

    def _on_error(self, message: str, details: str) -> None:
        self._summary = "failed"
        self.failed.emit(message, details)

    def cancel(self) -> None:
        if self.worker is not None:
            self._summary = "cancelled"
            self.worker.stop()

    def shutdown(self, ms: int = 30000) -> None:
        if self.worker is not None:
            self.worker.stop_and_wait(ms)

    def _on_item(self, item) -> None:
        if isinstance(item, _Step):
            self.progressed.emit(int(item.done), int(item.total))
        elif isinstance(item, _Result):
            self.session.slices.set_probabilities(item.image_index, item.slice_index, item.probs)
        elif isinstance(item, _BigResult):
            if item.step.failures:
                self._summary = f"{len(item.step.failures)} block(s) failed; predict again to retry them"
                self.failed.emit(f"{len(item.step.failures)} block(s) of the image could not be predicted; the "
                                 "others are kept: predict again to retry only those", "\n".join(item.step.failures))
            else:
                self.big_predicted.emit(item.image_index, str(item.step.labels))

    def _on_finished(self) -> None:
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.deleteLater()
        self.busy_changed.emit(False)
        self.finished.emit(self._summary)


def _export_config(what: set[str]):
    from ...core.predict import ExportConfig

    return ExportConfig(labels="labels" in what, probabilities="probabilities" in what,
                        instances="instances" in what, measurements="measurements" in what)


def _write_annotations(path: Path, annotations: np.ndarray, stack) -> None:
    """The painted labels, with the image's stack axis (frames of a time-lapse) and calibration."""
    from ...core.io import write_labels

    data = annotations[0] if annotations.shape[0] == 1 else annotations
    write_labels(path, data, stack.pixel_size, stack.unit or None,
                 stack_axis="T" if stack.stack_axes == "T" else "Z")


def _copy_model(model_dir: Path, target: Path) -> None:
    try:
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(model_dir, target)
    except OSError as exc:
        raise ImageWriteError(describe_write_error(exc, Path(exc.filename or target))) from None


__all__ = ["PredictionController", "SCOPES", "EXPORTS"]
