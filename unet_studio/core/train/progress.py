"""What a training run reports (:class:`TrainProgress`), its learning-rate schedule, and the calibrator type."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import TrainConfig

#: Chooses per-class thresholds from validation probabilities (K, N) and true classes (N,); [] keeps argmax.
Calibrator = Callable[[np.ndarray, np.ndarray], list[float]]


@dataclass
class TrainProgress:
    """One report of a running training (see docs/CONTRACTS.md).

    ``step`` counts the steps of this run (1-based); the model folder's history counts steps over
    all runs of a resumed model. ``val`` is None between evaluations, else a dict with per-class
    lists "iou" and "f1" (None for a class absent from the validation labels), "mean_iou",
    "mean_f1" and "loss". ``preview`` is the (K, Y, X) softmax of the dataset's preview image, now
    and then. An evaluation's ``val`` also says what it was computed on: "enough" (False when the held-out
    labels cannot support a score: then "reason" says why and the scores are None), "pixels" (held-out
    labelled pixels), "class_pixels" (per class) and "items" (the training-set items they lie in).
    ``time_limit_s`` is the run's time limit (None: none): with it the run ends at whichever of
    ``total_steps`` and the limit comes first.
    """

    step: int
    total_steps: int
    epoch: int
    loss: float
    lr: float
    samples_per_s: float
    elapsed_s: float
    eta_s: float | None
    val: dict | None = None
    best_score: float | None = None
    is_best: bool = False
    preview: np.ndarray | None = None
    device: str = ""
    done: bool = False
    stop_reason: str | None = None
    model_dir: Path | None = None
    batch_size: int = 0
    notice: str | None = None  # e.g. the batch was made smaller after an out-of-memory error
    time_limit_s: float | None = None

    def time_bound(self) -> bool:
        """Whether the time limit, not the number of steps, is what ends (or ended) this run."""
        if not self.time_limit_s:
            return False
        if self.done:
            return self.stop_reason == "time limit reached"
        if self.step <= 0 or self.elapsed_s <= 0:
            return True  # nothing measured yet: the time is all one knows
        steps_in_limit = self.step * self.time_limit_s / self.elapsed_s
        return steps_in_limit < self.total_steps

    def fraction_done(self) -> float:
        """How far the run is, 0..1: by time when the time limit ends it, else by steps."""
        if self.time_bound():
            return min(max(self.elapsed_s / self.time_limit_s, 0.0), 1.0)
        return min(max(self.step / max(self.total_steps, 1), 0.0), 1.0)


def learning_rate(config: TrainConfig, progress: float, step: int) -> float:
    """Warm-up over the first ``warmup_steps`` steps, then cosine decay to 1% by ``progress`` = 1."""
    base = config.learning_rate
    warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
    if config.schedule == "constant":
        return base * warm
    progress = min(max(progress, 0.0), 1.0)
    return base * warm * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))
