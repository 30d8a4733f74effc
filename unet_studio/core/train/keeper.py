"""The model a training run keeps: which evaluation's weights to keep (:class:`BestScore`), a copy of the
best weights so far and the thresholds chosen for them (:class:`ModelKeeper`), and what the model folder says
about the run (:class:`RunOrigin`).
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import DEFAULT_NORMALIZATION, ModelConfig, TrainConfig
from ..model import ModelInfo, UNet, save_model
from ..predict import INSTANCE_OUTPUT_KEY, instance_output_description
from .progress import Calibrator
from .validation import Validator, calibration_allowed

log = logging.getLogger(__name__)


class ModelKeeper:
    """The weights to save (on the CPU, apart from the training model) and the thresholds chosen for them.

    Parameters
    ----------
    model
        The model being trained; its current weights are copied now and at each :meth:`keep`.
    out_dir
        The model folder to write, or None to keep nothing on disk.
    calibrator
        Chooses thresholds on the validation data (see :meth:`calibrate`).
    """

    def __init__(self, model: UNet, out_dir: Path | None, calibrator: Calibrator) -> None:
        self.kept = copy.deepcopy(model).cpu()
        self.out_dir, self.calibrator = out_dir, calibrator
        self.any = False  # whether some weights were kept (before: the copy is the untrained start)
        self.thresholds: list[float] = []

    def keep(self, model: UNet) -> None:
        """Remember the model's current weights as the ones to save."""
        self.kept.load_state_dict(model.state_dict())
        self.any = True

    def keep_if_nothing_kept(self, model: UNet) -> bool:
        """Before the first save: keep the current weights when they are finite. Whether there is a model to save."""
        if not self.any:
            if not all(torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point()):
                return False
            self.keep(model)
        return True

    def calibrate(self, validator: Validator, n_classes: int, config: TrainConfig, device: torch.device,
                  autocast: Callable) -> None:
        """Choose the kept model's thresholds on the validation data, where that is allowed (see
        :func:`~unet_studio.core.train.validation.calibration_allowed`)."""
        if not calibration_allowed(validator, n_classes, config):
            return
        net = copy.deepcopy(self.kept).to(device)
        try:
            self.thresholds = list(self.calibrator(*validator.labelled_probabilities(net, autocast)))
        except Exception:  # noqa: BLE001 - calibration is an extra: never lose the model over it
            log.exception("could not calibrate the thresholds; predictions use plain argmax")
            self.thresholds = []

    def save(self, info: ModelInfo, optimizer_state: dict[str, torch.Tensor] | None = None) -> Path | None:
        """Write the kept weights with ``info`` (and the optimizer's moments, for resuming) to the model folder."""
        if self.out_dir is None:
            return None
        save_model(self.out_dir, self.kept, info, optimizer_state=optimizer_state)
        return self.out_dir


class BestScore:
    """The best validation score so far, and how many evaluations ago it was (for early stopping).

    Parameters
    ----------
    config
        The run's configuration: ``patience`` (evaluations without a better score after which the run
        stops early), ``score_tie`` and ``dense_fraction`` (see :meth:`is_best`).
    """

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.score: float | None = None
        self.since = 0  # evaluations since the best one

    def restart(self) -> None:
        """Forget the best score: the next evaluation is kept whatever its score (the upright part of a run)."""
        self.score, self.since = None, 0

    def is_best(self, score: float | None, loss: float, upright: bool, labelled_fraction: float) -> bool:
        """Whether the model scoring ``score`` (with validation ``loss``) is the one to keep.

        In the upright part of a run, or on sparse validation labels (``labelled_fraction`` under
        ``dense_fraction``), a score within ``score_tie`` below the best counts as best.
        """
        # Scribbles only label the easy middles of structures: their F1 saturates and wobbles, and a
        # strict maximum would keep an early model (ISBI scribbles: 0.973 at step 700, 0.971 at 1650).
        # In the upright part of a run, what the network learns (a label convention, a fraction of a
        # pixel) is smaller than the wobble of the scores of one held-out image (ISBI, one run: 0.9025
        # 50 steps into it, 0.8931 to 0.9006 after), and a strict maximum keeps the model that has
        # learnt least of it. Among scores tied within that noise, keep the later model.
        sparse = labelled_fraction < self.config.dense_fraction
        tie = self.config.score_tie if upright or sparse else 0.0
        if score is not None and math.isfinite(loss) and (self.score is None or score > self.score - tie):
            self.score = max(score, self.score or score)
            return True
        return False

    def count(self, is_best: bool) -> bool:
        """Count one evaluation; whether the run has gone ``patience`` evaluations without a better score."""
        self.since = 0 if is_best else self.since + 1
        return self.since >= self.config.patience


@dataclass(frozen=True)
class RunOrigin:
    """What the model folder says about a run that does not change while it runs.

    Attributes
    ----------
    model_config, class_values, class_names
        The network and the classes it predicts.
    config
        The run's training configuration.
    previous
        The description of the model the run started from (``init_from``), or None.
    init_from
        The folder of that model, or None.
    patch
        The patch size the run trains on.
    """

    model_config: ModelConfig
    class_values: list[int]
    class_names: list[str]
    config: TrainConfig
    previous: ModelInfo | None
    init_from: str | os.PathLike | None
    patch: int

    def info(self, *, steps: int, stop_reason: str | None, batch_size: int, history: list[dict[str, Any]],
             best_score: float | None, thresholds: list[float]) -> ModelInfo:
        """The description of the model saved after ``steps`` steps in all (a resumed run's included)."""
        extra = dict(self.previous.extra) if self.previous is not None else {}
        extra.update({"steps": steps, "stop_reason": stop_reason,
                      "resumed_from": str(self.init_from) if self.init_from else extra.get("resumed_from"),
                      "patch_size": self.patch, "batch_size": batch_size})
        if self.config.instance_output == "three_class":  # predict --instances reads how to make objects here
            extra[INSTANCE_OUTPUT_KEY] = instance_output_description()
        normalization = (self.previous.normalization if self.previous is not None
                         else dict(DEFAULT_NORMALIZATION))
        return ModelInfo(model_config=self.model_config, class_values=self.class_values,
                         class_names=self.class_names, normalization=normalization,
                         train_config=self.config.to_dict(), history=copy.deepcopy(history),
                         best_score=best_score, extra=extra, thresholds=list(thresholds))


def save_while_stopping(save: Callable[[], object]) -> None:
    """Call ``save`` while a run stops from outside (``close()``, Ctrl-C, an error), never masking why it stops."""
    pending = sys.exc_info()[1]
    try:
        save()
    except Exception as exc:  # noqa: BLE001 - never mask the reason we are stopping
        # No traceback; and when an error stops us (often this same failed write), that error
        # is what the person hears about.
        log.log(logging.DEBUG if isinstance(pending, Exception) else logging.WARNING,
                "could not save the model while stopping: %s", exc)
