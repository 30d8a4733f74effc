"""Training from the application: the project's labelled slices -> core training in a background worker.

The worker thread builds the :class:`~unet_studio.core.train.data.TrainingSet` itself (it opens its own copy
of each image file and normalises the labelled slices), then runs :func:`core.training.train`. The GUI
thread only copies the label slices at start, forwards each :class:`TrainProgress` to the training
panel, shows previews in the session's probability overlay, and pushes new label edits and the visible
slice into the running training set (both thread-safe). Stopping closes the generator at its next step;
the training module then writes the best model into the project's ``models/current``.

A run that starts from a bundled starting model ("Start from" in the Training panel) shows that model's
prediction of the visible slice before its first step (:class:`_StartPreview`), so the first answer takes
seconds however long training takes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PySide6 import QtCore

from ...core.errors import DataError
from ...core.presets import for_instances
from ..big_image.source import is_big
from ..big_image.training import PaintedCrop, painted_crops
from ..session import Session
from .training_objects import object_training
from .training_outcome import RunRecord, describe_items, model_stamp
from .training_request import TrainingRequest
from .warmup import gui_compute_threads
from .workers import GeneratorWorker

log = logging.getLogger(__name__)

#: Label edits reach the running training at most this often (copying a slice is cheap, but not free).
PUSH_LABELS_MS = 500


@dataclass
class _DatasetReady:
    """First item of the worker's generator: the training set, so the GUI can talk to it."""

    dataset: object
    items: list[tuple[int, int]]


@dataclass
class _Progress:
    progress: object     # TrainProgress
    source: object       # the preview image its preview was computed from, when known


@dataclass
class _StartPreview:
    """The starting model's prediction of the preview image, before the first step (seconds, not minutes)."""

    preview: np.ndarray  # (K, Y, X) probabilities
    source: object       # the preview image it was computed from


@dataclass
class _TrainingJob:
    """Everything one training run needs, copied on the GUI thread; :meth:`run` is the worker's generator."""

    snapshot: list              # (image index, slice index, path, copy of the labels, accepted flags or None)
    preview: tuple | None       # ((image index, slice index), normalised image) of the visible slice
    request: TrainingRequest
    class_names: list[str]
    out_dir: object
    init_from: object
    config_hook: Callable | None
    trainer: Callable | None
    keep_previous: object = None  # the ProjectLayout whose model a from-scratch run would replace
    objects: object = None  # ObjectTraining: imported instances and the boundary class (None: none)

    @property
    def n_classes(self) -> int:
        """Classes the model predicts: a boundary class at the end is trained as background, not predicted."""
        return len(self.class_names) if self.objects is None else self.objects.n_classes

    def _dataset(self):
        from ...core import io
        from ...core.train import TrainingSet

        images, labels, accepted, stacks = [], [], [], {}
        try:
            for _, slice_index, path, label, flags in self.snapshot:
                if isinstance(path, PaintedCrop):  # a painted region of a big image (read here, not whole)
                    images.append(path.read())
                    labels.append(label)
                    accepted.append(flags)
                    continue
                if path not in stacks:
                    stacks[path] = io.read_image(path)
                images.append(io.normalize_percentile(stacks[path].get_slice(slice_index)))
                labels.append(label)
                accepted.append(flags)
        finally:
            for stack in stacks.values():
                stack.close()
        labels, instances = (labels, None) if self.objects is None else self.objects.prepare(labels)
        dataset = TrainingSet(images, labels, self.n_classes, instances=instances, accepted=accepted)
        if self.preview is not None:
            dataset.set_preview_image(self.preview[1])
        return dataset

    def _start_preview(self, dataset) -> _StartPreview | None:
        """The starting model's prediction of the preview image, when the run starts from a starting model."""
        from ...core.config import InferConfig
        from ...core.model import load_model
        from ...core.predict import predict_probabilities
        from ...core.train import StartingWeights

        image = dataset.preview_image
        if not isinstance(self.init_from, StartingWeights) or image is None:
            return None
        model, _ = load_model(self.init_from.folder, "cpu")
        return _StartPreview(np.asarray(predict_probabilities(model, image, InferConfig(device="cpu")), np.float32),
                             image)

    def run(self) -> Iterator:
        """Build the training set in this (worker) thread, then train; yields _DatasetReady, then _Progress."""
        from ...core.project import keep_previous_model
        from ...core.train import train

        if self.keep_previous is not None:  # here, not on the GUI thread: a model folder can be large
            keep_previous_model(self.keep_previous)
        dataset = self._dataset()
        yield _DatasetReady(dataset, [(i, s) for i, s, *_ in self.snapshot])
        n_classes = self.n_classes
        model_config, train_config = self.request.configs(dataset.in_channels, n_classes)
        train_config = train_config.replace(num_threads=gui_compute_threads())
        if self.objects is not None:  # objects trained as `train --instances` trains them
            train_config = for_instances(train_config)
        if self.config_hook is not None:
            model_config, train_config = self.config_hook(model_config, train_config)
        run = (self.trainer or train)(dataset, model_config, train_config, out_dir=self.out_dir,
                                      init_from=self.init_from, class_values=list(range(1, n_classes + 1)),
                                      class_names=self.class_names[:n_classes])
        try:
            start = self._start_preview(dataset)  # after train() accepted the starting model for these data
            if start is not None:
                yield start
            while True:
                # The preview is computed from the dataset's preview image during next(); when the
                # image is the same object before and after, the preview is known to show it.
                before = dataset.preview_image
                try:
                    progress = next(run)
                except StopIteration:
                    return
                yield _Progress(progress, before if dataset.preview_image is before else None)
        finally:
            run.close()


class TrainingController(QtCore.QObject):
    """Runs one training at a time; see the module docstring.

    ``config_hook(model_config, train_config) -> (model_config, train_config)`` lets tests (and power
    users) change the preset's configuration, e.g. to a tiny network. ``trainer`` is the training
    generator function, :func:`unet_studio.core.train.train` when None (a test passes a failing one).
    """

    started = QtCore.Signal()
    progressed = QtCore.Signal(object)         # TrainProgress
    preview_shown = QtCore.Signal(int, int)    # image index, slice index
    finished = QtCore.Signal(bool)             # True when a model was written
    failed = QtCore.Signal(str, str)           # message, details
    ended = QtCore.Signal(object)              # TrainingOutcome, after finished

    def __init__(self, session: Session, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.worker: GeneratorWorker | None = None
        self.config_hook: Callable | None = None
        self.trainer: Callable | None = None
        self._dataset = None
        self._items: list[tuple[int, int]] = []
        self._pushed_versions: dict[int, int] = {}
        self._preview_sources: list[tuple[np.ndarray, tuple[int, int]]] = []
        self._start_key: tuple[int, int] | None = None
        self._model_written = False
        self._objects = None  # the running job's ObjectTraining
        self.kept_previous = False  # whether the last run started by copying the model to models/previous
        self._run = RunRecord()
        self._push_timer = QtCore.QTimer(self)
        self._push_timer.setSingleShot(True)
        self._push_timer.setInterval(PUSH_LABELS_MS)
        self._push_timer.timeout.connect(self.push_labels)
        session.labels_changed.connect(lambda *_: self._push_timer.start() if self.is_running() else None)
        session.current_changed.connect(lambda *_: self.update_preview_image())

    def is_running(self) -> bool:
        return self.worker is not None and self.worker.is_running()

    def restore_previous(self) -> None:
        """Put back the model the last from-scratch run replaced (swapping it with the current one).

        Raises :class:`~unet_studio.core.project.ProjectError` while training runs or without a previous model.
        """
        from ...core.project import ProjectError, restore_previous_model

        if self.is_running():
            raise ProjectError("training is running: stop it before restoring the previous model")
        session = self.session
        if session.folder is None:
            raise ProjectError("this project has no model folder yet: there is no previous model")
        restore_previous_model(session.project.layout)
        session.notify_model_changed()

    # ------------------------------------------------------------------ start / stop

    def start(self, request: TrainingRequest) -> None:
        """Start training as the Training panel's ``request`` says.

        Raises :class:`DataError` (for the window to show) when there is nothing to train on.
        """
        if self.is_running():
            return
        session = self.session
        snapshot = self._labelled_snapshot()
        session.editing.end_stroke()
        folder = session.ensure_folder()
        out_dir = session.project.model_dir
        preview = self._current_preview()
        job = _TrainingJob(
            snapshot=snapshot, preview=preview, request=request, class_names=[c.name for c in session.classes],
            objects=object_training(session, [(i, s) for i, s, *_ in snapshot]),
            out_dir=out_dir, init_from=self._init_from(request, out_dir),
            config_hook=self.config_hook, trainer=self.trainer,
            keep_previous=None if request.continue_training or session.model_dir is None else session.project.layout)
        self.kept_previous = job.keep_previous is not None
        self._dataset, self._items = None, []
        self._preview_sources = []
        self._start_key = None if preview is None else preview[0]
        self._pushed_versions = {i: session.images[i].labels.version for i in range(len(session.images))}
        self._objects = job.objects
        self._model_written = False
        self._run = RunRecord(model_stamp=model_stamp(out_dir))
        log.info("training on %d slices into %s", len(snapshot), folder)
        self.worker = GeneratorWorker(job.run, self)
        self.worker.yielded.connect(self._on_item)
        self.worker.errored.connect(self._run.fail)
        self.worker.errored.connect(self.failed)
        self.worker.finished.connect(self._on_finished)
        self.worker.start()
        self.started.emit()

    def _init_from(self, request: TrainingRequest, out_dir):
        """What the run starts from: the project's model (continued), a starting model's weights, or None."""
        if request.continue_training and self.session.model_dir is not None:
            return out_dir
        if not request.starting_model:
            return None
        from ...core.train import StartingWeights
        from ...resources import starting_model_path

        # A starting model missing from this installation: ModelFileError, shown before anything starts.
        return StartingWeights(starting_model_path(request.starting_model), f"the {request.starting_model} model")

    def _labelled_snapshot(self) -> list[tuple[int, int, object, np.ndarray]]:
        """(image index, slice index, path, copy of the labels) of every labelled slice; DataError if too few."""
        session = self.session
        if len(session.classes) < 2:
            raise DataError("training needs at least two classes: add a class in the Classes panel")
        snapshot = []
        for image_index, state in enumerate(session.images):
            if is_big(state.stack):  # only its painted regions, with a margin of context
                snapshot.extend(painted_crops(image_index, state))
                continue
            for slice_index in state.labelled_slices():
                snapshot.append((image_index, slice_index, state.entry.path,
                                 state.labels.data[slice_index].copy(), state.labels.accepted_slice(slice_index)))
        if not snapshot:
            raise DataError("nothing to train on yet: paint some pixels of each class first")
        painted = np.zeros(len(session.classes) + 1, bool)
        for *_, labels, _ in snapshot:
            painted[np.unique(labels)] = True
        if painted[1:].sum() < 2:
            raise DataError("paint at least two different classes (e.g. background and foreground) before training")
        return snapshot

    def model_thresholds(self) -> list[float]:
        """The per-class thresholds the project's model chose on its validation data ([] when none)."""
        from ...core.errors import UNetStudioError
        from ...core.model import read_model_info

        folder = self.session.model_dir
        if folder is None:
            return []
        try:
            return list(read_model_info(folder)[0].thresholds)  # a small JSON file
        except UNetStudioError:
            return []

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop()

    def shutdown(self, ms: int = 30000) -> None:
        """Stop and wait (on close): the best model is written before the thread ends."""
        if self.worker is not None:
            self.worker.stop_and_wait(ms)

    # ------------------------------------------------------------------ talking to the running training

    def _current_preview(self):
        session = self.session
        if session.current is None or is_big(session.current.stack):
            return None  # a big image's slice is never normalised whole (its preview would be a region)
        return (session.current_index, session.current_slice), session.slices.normalized()

    def update_preview_image(self) -> None:
        """Make the visible slice the one the training previews (called on slice and image change)."""
        if self._dataset is None or not self.is_running():
            return
        preview = self._current_preview()
        if preview is None:
            self._dataset.set_preview_image(None)
            return
        key, image = preview
        self._dataset.set_preview_image(image)
        # Keep the object the dataset holds: previews are matched to their slice by identity.
        self._preview_sources = [(self._dataset.preview_image, key)] + self._preview_sources[:3]

    def push_labels(self) -> None:
        """Send label slices changed since the start (or the last push) to the running training set."""
        if self._dataset is None or not self.is_running():
            return
        for index, (image_index, slice_index) in enumerate(self._items):
            if image_index >= len(self.session.images):
                continue
            state = self.session.images[image_index]
            if self._pushed_versions.get(image_index) == state.labels.version or is_big(state.stack):
                continue  # a big image's crops are fixed at the start: its new strokes wait for the next run
            labels = state.labels.data[slice_index].copy()
            if self._objects is not None:  # boundary -> background, and the objects the border weights follow
                self._objects.update(self._dataset, index, labels, state.labels.instances_slice(slice_index),
                                     state.labels.accepted_slice(slice_index))
                continue
            # Classes added while training runs are unknown to this run: their pixels wait for the next.
            labels[labels > self._dataset.n_classes] = 0
            self._dataset.update_labels(index, labels, state.labels.accepted_slice(slice_index))
        self._pushed_versions = {i: s.labels.version for i, s in enumerate(self.session.images)}

    # ------------------------------------------------------------------ worker signals

    def _on_item(self, item) -> None:
        if isinstance(item, _DatasetReady):
            self._dataset, self._items = item.dataset, item.items
            initial = item.dataset.preview_image
            self._preview_sources = [] if initial is None else [(initial, self._start_key)]
            if self._start_key != (self.session.current_index, self.session.current_slice):
                self.update_preview_image()
            self.push_labels()
            return
        if isinstance(item, _StartPreview):
            key = next((k for image, k in self._preview_sources if image is item.source), None)
            self._show_preview(item.preview, key)
            return
        progress = item.progress
        if progress.done and progress.model_dir is not None:
            self._model_written = True
        self._run.record(progress)
        if progress.val is not None:
            progress.val["where"] = describe_items(self.session, self._items, progress.val.get("items") or [])
        key = next((k for image, k in self._preview_sources if image is item.source), None)
        self._show_preview(getattr(progress, "preview", None), key)
        self.progressed.emit(progress)

    def _show_preview(self, preview: np.ndarray | None, key: tuple[int, int] | None) -> None:
        """Show a preview's probabilities on the slice ``key`` it was computed from (when it still fits)."""
        if preview is None or key is None:
            return
        image_index, slice_index = key
        state = self.session.images[image_index] if image_index < len(self.session.images) else None
        if state is not None and preview.shape[1:] == state.labels.shape[1:]:
            self.session.slices.set_probabilities(image_index, slice_index, preview)
            self.preview_shown.emit(image_index, slice_index)

    def _on_finished(self) -> None:
        worker, self.worker = self.worker, None
        self._dataset = None
        if worker is not None:
            worker.deleteLater()
        written = self._model_written or self.session.model_dir is not None
        self.session.notify_model_changed()
        self.finished.emit(written)
        self.ended.emit(self._run.outcome(self.session.project.model_dir))
