"""The data side of a training run: the validation split, the patch sampler, the class weights and the
validator, kept up to date with labels a person edits while training runs; augmented batches on the device,
and their size, halved after an out-of-memory error (:class:`BatchSize`).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..config import TrainConfig
from ..device import describe_device
from ..errors import DataError, TrainingError
from . import augment as aug
from .data import PatchSampler, TrainingSet, split_validation
from .losses import class_weights_from_counts
from .setup import border_maps
from .validation import Validator

log = logging.getLogger(__name__)


class BatchSize:
    """The number of patches per step: the configured one, halved after each out-of-memory error.

    Parameters
    ----------
    size
        The configured batch size.
    device
        Where the run trains (its cache is emptied after an out-of-memory error; named in the message).
    patch
        The patch size (named in the message when even one patch does not fit).
    """

    def __init__(self, size: int, device: torch.device, patch: int) -> None:
        self.size, self.device, self.patch = size, device, patch
        self.notice: str | None = None  # what was changed, for the person (None until a halving)

    def halve(self) -> None:
        """After an out-of-memory error: halve the batch and go on, or say what to do at a batch of one.

        Raises
        ------
        TrainingError
            Out of memory with a batch of one patch already.
        """
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.size <= 1:
            raise TrainingError(
                f"out of memory on {describe_device(self.device)} even with one {self.patch}x{self.patch} patch "
                "per step; close other programs that use it, choose the fast preset or a smaller network, or "
                "train on the CPU (--device cpu)") from None
        old, self.size = self.size, self.size // 2
        self.notice = f"out of memory with {old} patches per step; going on with {self.size}"
        log.warning(self.notice)


class RunData:
    """What one training run samples from and scores on (see the module docs).

    Parameters
    ----------
    dataset
        The images and labels; the labels may change while training runs.
    config
        The run's configuration (validation fraction, class balance, border weights, labelled bias).
    rng
        The run's random generator (split and sampling), for reproducible runs.
    device
        Where batches, class weights and validation go.
    channels_last
        Whether image batches are laid out channels-last (as the model is).
    sample_rng
        The generator of patch sampling when it is not ``rng`` (each rank of a distributed run its own,
        while the validation split, drawn from ``rng``, is the same on every rank).

    Raises
    ------
    DataError
        No labelled pixel is left for training after the validation split.
    """

    def __init__(self, dataset: TrainingSet, config: TrainConfig, rng: np.random.Generator, device: torch.device,
                 channels_last: bool, crop: int, sample_rng: np.random.Generator | None = None) -> None:
        self.dataset, self.config, self.device, self.channels_last = dataset, config, device, channels_last
        # Validation is chosen among, and scored on, what a person painted: accepted predictions
        # agree with the model by construction (they are still trained on).
        labels, evidence, self.version = dataset.evidence_snapshot()
        self.split = split_validation(evidence, config.val_fraction, rng)
        train_labels = self._train_labels(labels, evidence)
        self.class_weights = self._class_weights(train_labels)
        self.sampler = PatchSampler(dataset.images, train_labels, border_maps(dataset, labels, config), crop,
                                    config.labelled_bias, rng if sample_rng is None else sample_rng, dataset.n_classes)
        self.validator = Validator(dataset, self.split.val_items, evidence, device)

    def _train_labels(self, labels: list[np.ndarray], evidence: list[np.ndarray]) -> list[np.ndarray]:
        train_labels = self.split.train_labels(labels, evidence)
        if not any(lab.any() for lab in train_labels):
            raise DataError("no labelled pixel left for training after the validation split; "
                            "label more or lower the validation fraction")
        return train_labels

    def _class_weights(self, train_labels: list[np.ndarray]) -> torch.Tensor:
        power = self.config.class_balance_power if self.config.class_balance else 0.0
        weights = class_weights_from_counts(self.dataset.class_counts(train_labels), power)
        return torch.from_numpy(weights).to(self.device)

    def labels_changed(self) -> bool:
        """Whether a person changed the labels since they were last taken."""
        return self.dataset.version != self.version

    def refresh_labels(self) -> None:
        """Take the labels as they are now: sampler, class weights and validator follow them."""
        labels, evidence, self.version = self.dataset.evidence_snapshot()
        train_labels = self._train_labels(labels, evidence)
        self.class_weights = self._class_weights(train_labels)
        self.sampler.set_labels(train_labels)
        if self.config.use_border_weights:  # instances may change with the labels (the application's objects)
            self.sampler.set_weights(border_maps(self.dataset, labels, self.config))
        self.validator = Validator(self.dataset, self.split.val_items, evidence, self.device)

    def batch(self, size: int, patch: int, out_patch: int, params: aug.AugmentParams | None,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``size`` crops, moved to the device in one copy and augmented there: (images, labels, weights).

        With valid convolutions (``out_patch`` < ``patch``) the targets are the centre of each patch.
        """
        batch = self.sampler.sample(size)
        images = torch.from_numpy(batch.images).to(self.device, non_blocking=True)
        labels = torch.from_numpy(batch.labels).to(self.device, non_blocking=True)
        weights = None if batch.weights is None else torch.from_numpy(batch.weights).to(self.device,
                                                                                          non_blocking=True)
        images, labels, weights = aug.augment_batch(images, labels, weights, patch, params, generator)
        if out_patch != patch:
            top = (patch - out_patch) // 2
            window = (..., slice(top, top + out_patch), slice(top, top + out_patch))
            labels = labels[window]
            weights = None if weights is None else weights[window]
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels, weights
