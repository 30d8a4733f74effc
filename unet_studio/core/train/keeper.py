"""The model a training run keeps: a copy of its best weights so far, the thresholds chosen for them, and
writing them to the model folder.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from ..config import TrainConfig
from ..model import ModelInfo, UNet, save_model
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
