"""Warm-up: import PyTorch and run a tiny training step and prediction once, off the GUI thread.

PyTorch loads big shared libraries on import and more modules on first use (the optimiser, autograd,
the inference path); each load holds Python's GIL for up to a few hundred milliseconds and would
freeze the window if it happened when the person presses Train. The application calls
:func:`warm_up` in a background thread a second after start-up instead.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np
from PySide6 import QtCore

log = logging.getLogger(__name__)


def gui_compute_threads() -> int:
    """PyTorch threads for work started from the window: one core stays free for the GUI thread."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores - 1)


def warm_up() -> bool:
    """Import the compute modules and exercise them on a 32x32 image; False when that failed."""
    started = time.perf_counter()
    try:
        from ...core.config import InferConfig, ModelConfig, TrainConfig
        from ...core.model import UNet
        from ...core.predict import predict_probabilities
        from ...core.train import TrainingSet, train

        rng = np.random.default_rng(0)
        image = rng.random((1, 32, 32), dtype=np.float32)
        labels = np.zeros((32, 32), np.int64)
        labels[:16, :] = 1
        labels[16:, :] = 2
        dataset = TrainingSet([image], [labels], 2)
        dataset.set_preview_image(image)
        model_config = ModelConfig(base_channels=2, depth=2, norm="batch")
        train_config = TrainConfig(patch_size=16, batch_size=1, epochs=1, steps_per_epoch=2, eval_every=2,
                                   preview_every=2, val_fraction=0.0, augment=True, amp=False,
                                   num_threads=gui_compute_threads())
        for _ in train(dataset, model_config, train_config):
            pass
        net = UNet.from_config(model_config)
        net.eval()
        predict_probabilities(net, image, InferConfig(device="cpu"))
    except Exception:  # a failed warm-up costs nothing but the warm-up: training reports real errors
        log.warning("warm-up failed", exc_info=True)
        return False
    log.debug("warm-up took %.1f s", time.perf_counter() - started)
    return True


class WarmUp(QtCore.QObject):
    """Runs :func:`warm_up` once in a daemon thread, ``delay_ms`` after :meth:`start`."""

    def __init__(self, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.thread: threading.Thread | None = None

    def start(self, delay_ms: int = 1000) -> None:
        QtCore.QTimer.singleShot(delay_ms, self, self._run)

    def _run(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=warm_up, name="unet-studio-warm-up", daemon=True)
            self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join()
