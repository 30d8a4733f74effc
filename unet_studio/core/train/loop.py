"""Training: ``train(...)`` is a generator that yields :class:`TrainProgress` and can be stopped at any yield.

Stopping (``close()``, dropping the generator, an exception such as Ctrl-C in the caller's thread)
leaves the best model so far in ``out_dir``: the best weights are kept in memory at each evaluation
and written atomically there, and once more with the full history when the run ends however it ends.

One step: sample crops on the host (biased toward annotated pixels), move them to the device in one
copy, augment the whole batch there (:mod:`.augment`), forward, masked loss, backward, AdamW step.
The learning rate follows a warm-up then a cosine decay over the run's progress, measured in steps
or, with a time limit, in time, whichever is further along.

Flips and 90-degree rotations teach the network that its answer does not depend on orientation. Labels
often do: membranes traced about 0.6 px above their centre lines (ISBI 2012, bench/label_offset.py), a
boundary painted on one side of an edge, the shading of DIC images. Past ``orientation_until`` of the
run's progress the batches keep every other augmentation but no flips or 90-degree rotations, so the
network can learn such conventions; best-model tracking starts again there, and the model kept is one
of that last part.

Scoring on the validation data and choosing thresholds: :mod:`.validation`; the model a run starts from,
its patch size and augmentation ranges: :mod:`.setup`; which model is kept and what its folder says:
:mod:`.keeper`; the batch size, halved when memory runs out: :mod:`.batches`. The tuning constants of
model keeping and threshold calibration are fields of :class:`~unet_studio.core.config.TrainConfig`; the
threshold calibrator can be passed in (``train(..., calibrator=...)``).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..config import InferConfig, ModelConfig, TrainConfig
from ..device import configure_cpu_threads, describe_device, is_out_of_memory, select_device, training_autocast_dtype
from ..model import output_size
from ..predict import predict_probabilities
from . import augment as aug
from .averaging import WeightAverage
from .batches import BatchSize, RunData
from .data import TrainingSet
from .distributed import SINGLE_PROCESS, Ranks
from .keeper import BestScore, ModelKeeper, RunOrigin, save_while_stopping
from .losses import segmentation_loss
from .progress import Calibrator, TrainProgress, learning_rate
from .setup import (
    admissible_patch,
    augment_params,
    build_model,
    make_optimizer,
    optimizer_tensors,
    place_model,
    resume_moments,
)
from .unlabelled import confident_targets, edge_smoothness_loss, pseudo_label_loss, second_view
from .validation import calibrate_thresholds

log = logging.getLogger(__name__)

def train(dataset: TrainingSet, model_config: ModelConfig, train_config: TrainConfig, *,
          out_dir: str | os.PathLike | None = None, init_from: str | os.PathLike | None = None,
          class_values: Sequence[int] | None = None, class_names: Sequence[str] | None = None,
          calibrator: Calibrator | None = None, ranks: Ranks = SINGLE_PROCESS,
          sampler=None) -> Iterator[TrainProgress]:
    """Train a U-Net on ``dataset``, yielding :class:`TrainProgress` after every step.

    Parameters
    ----------
    dataset
        The images and labels; labels may change while training runs (``update_labels``).
    model_config
        Architecture; ``in_channels`` and ``n_classes`` are taken from the dataset. Ignored when
        ``init_from`` is given (the saved model's architecture is used).
    train_config
        How to train (see :class:`~unet_studio.core.config.TrainConfig`).
    out_dir
        Model folder to write the best model to (atomically), or None to keep nothing on disk.
    init_from
        Model folder to resume or fine-tune from: its weights are the start and its history continues.
        A :class:`~unet_studio.core.train.setup.StartingWeights` starts from its weights only (fresh
        history, step 0, fresh optimizer moments, these class values and names).
    class_values, class_names
        Saved in the model folder (values written in predicted label images); default 1..K.
    calibrator
        Chooses the saved thresholds on the validation data at the end of a two-class run (default:
        :func:`~unet_studio.core.train.validation.calibrate_thresholds`).
    ranks
        This process's place in a distributed run (:mod:`.distributed`; default: a run of one process).
        Rank 0 validates, decides when to stop and saves; the others pass ``out_dir=None``.
    sampler
        Where the patches come from: an object with ``sample(n)`` returning ``.images``, ``.labels`` and
        ``.weights`` arrays as :class:`~unet_studio.core.train.data.PatchSampler` does (the default, biased
        random crops); tests pass fixed batches.

    Returns
    -------
    Iterator[TrainProgress]
        Ends after a final report with ``done=True`` and ``stop_reason`` (finished, time limit, early
        stopping, or a non-finite loss). Stopping it early (``close()``) also saves.

    Raises
    ------
    DataError
        At the call: no labelled pixel left for training, or ``init_from`` of other channels or classes.
    """
    trainer = _Trainer(dataset, model_config, train_config, out_dir, init_from, class_values, class_names,
                       calibrator or calibrate_thresholds, ranks=ranks, sampler=sampler)
    return trainer.run()


class _Trainer:
    """The state of one training run: set up here, advanced by :meth:`run` one step at a time."""

    def __init__(self, dataset: TrainingSet, model_config: ModelConfig, config: TrainConfig, out_dir, init_from,
                 class_values, class_names, calibrator: Calibrator, *, ranks: Ranks = SINGLE_PROCESS,
                 sampler=None) -> None:
        self.dataset, self.config, self.ranks = dataset, config, ranks
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.device = select_device(config.device)
        if self.device.type == "cpu":
            configure_cpu_threads(config.num_threads)
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(ranks.sampling_seed(config.seed))  # each rank its own augmentations
        self.model, self.history, self.step_offset, class_values, class_names, previous = build_model(
            dataset, model_config, init_from, class_values, class_names)
        self.init_from = init_from
        # Read with the weights, before this run's first save can replace the folder (continuing in place).
        self.resume_moments = resume_moments(init_from)
        net_config = self.model.config  # the saved model's when resuming
        self.patch = admissible_patch(config.patch_size, net_config)
        self.origin = RunOrigin(net_config, class_values, class_names, config, previous, init_from, self.patch)
        self.out_patch = output_size(self.patch, net_config.depth, net_config.padding)
        self.params = augment_params(config)
        self.crop = aug.crop_size(self.patch, self.params)
        # The last part of the run (after ``orientation_until``) keeps every other augmentation but no
        # flips or 90-degree rotations (see the module docs); the crop size does not depend on them.
        self.upright_params = None if self.params is None else replace(self.params, flips=False)
        self.keeper = ModelKeeper(self.model, self.out_dir, calibrator)  # the best weights so far
        self._init_run_state()
        self._init_device()
        self.data = RunData(dataset, config, self.rng, self.device, self.channels_last, self.crop,
                            sample_rng=ranks.sampling_rng(config.seed))
        if sampler is not None:
            self.data.sampler = sampler

    def _init_run_state(self) -> None:
        self.total = self.config.epochs * self.config.steps_per_epoch
        self.step, self.best = 0, BestScore(self.config)
        self.upright, self.saved, self.diverged = False, False, False
        self.stop_reason: str | None = None
        self.lr = learning_rate(self.config, 0.0, 0)
        self.progress = 0.0
        self.last_loss, self.loss_count = float("nan"), 0
        self.next_preview = self.config.preview_every
        self.start = time.perf_counter()
        self.times: deque[tuple[float, int]] = deque(maxlen=21)  # (time, step) of recent reports, for the rate

    def _init_device(self) -> None:
        self.model, self.channels_last = place_model(self.model, self.device)
        # What steps train through (DDP in a distributed run); self.scored is validated, previewed and saved.
        self.net = self.ranks.wrap(self.model, self.device)
        self.batch = BatchSize(self.config.batch_size, self.device, self.patch)
        self.model.train()
        self.amp_dtype = training_autocast_dtype(self.device, self.config.amp)
        use_scaler = self.amp_dtype == torch.float16 and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if use_scaler else None
        self.optimizer = make_optimizer(self.model, self.config, self.resume_moments, self.init_from)
        # What is evaluated, previewed, kept and saved: the trained weights, or their moving average.
        self.average = (WeightAverage(self.model, self.config.weight_average) if self.config.weight_average
                        else None)
        self.report_every = 1 if self.device.type == "cpu" else 10  # yielding needs the loss on the host: a sync
        self.description = self.ranks.describe(describe_device(self.device))
        self.loss_sum = torch.zeros((), device=self.device)

    @property
    def scored(self) -> torch.nn.Module:
        """The weights the run evaluates, previews and keeps (the moving average when there is one)."""
        return self.model if self.average is None else self.average.module

    def autocast(self):
        """The mixed-precision context of this run's forward passes (disabled where it does not pay)."""
        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None)

    # -- one step ----------------------------------------------------------------------------------

    def _schedule(self, elapsed: float) -> None:
        """Before a step: this step's learning rate, and the switch to the upright part of the run."""
        progress = self.step / self.total
        if self.config.time_limit_s:
            progress = max(progress, elapsed / self.config.time_limit_s)
        self.lr = learning_rate(self.config, progress, self.step)
        self.progress = progress
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr
        if not self.upright and self.params is not None and progress >= self.config.orientation_until:
            # The upright part: its first evaluation is kept whatever its score (module docs).
            self.upright = True
            self.best.restart()
            log.info("step %d: training on without flips and 90-degree rotations", self.step)

    def _forward_backward(self) -> torch.Tensor:
        """One batch: sample, augment, forward, loss, backward (the optimizer steps later); return the loss."""
        params = self.upright_params if self.upright else self.params
        images, labels, weights = self.data.batch(self.batch.size, self.patch, self.out_patch, params,
                                                  self.generator)
        config = self.config
        # Full masks leave nothing unlabelled: their batches train exactly as without (at no extra cost).
        learning, snapping = self._learning_from_unlabelled(), config.edge_smoothness > 0
        sparse = (learning or snapping) and bool((labels == 0).any())  # the check waits for the device: only if asked
        unlabelled = learning and sparse
        if unlabelled and config.unlabelled_loss == "consistency":
            loss, logits = self._consistency_loss(images, labels, weights, params)
        else:
            with self.autocast():
                logits = self.net(images)
            loss = segmentation_loss(logits.float(), labels, config.loss, self.data.class_weights, weights)
            if unlabelled:  # pseudo-labels: this pass's confident predictions (see :mod:`.unlabelled`)
                targets, mask = confident_targets(logits, labels, config.unlabelled_threshold)
                loss = loss + config.unlabelled_weight * pseudo_label_loss(logits, targets, mask)
        if snapping and sparse:  # where the strokes' structures end (see :mod:`.unlabelled`)
            loss = loss + config.edge_smoothness * edge_smoothness_loss(logits, images, config.edge_sigma)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()
        return loss

    def _learning_from_unlabelled(self) -> bool:
        config = self.config
        return (config.unlabelled_loss != "off" and config.unlabelled_weight > 0
                and self.progress >= config.unlabelled_from)

    def _consistency_loss(self, images, labels, weights, params) -> tuple[torch.Tensor, torch.Tensor]:
        """The labelled loss over both views plus the second view's on unlabelled pixels (see :mod:`.unlabelled`),
        and the first view's logits."""
        config = self.config
        view = second_view(images, params, self.generator, self.channels_last)
        # Both views in one forward pass (one pass is also what DDP expects before a backward).
        with self.autocast():
            both = self.net(torch.cat([images, view]))
        logits, logits_view = both.chunk(2)
        targets, mask = confident_targets(logits, labels, config.unlabelled_threshold)
        both_weights = None if weights is None else torch.cat([weights, weights])
        loss = segmentation_loss(both.float(), torch.cat([labels, labels]), config.loss, self.data.class_weights,
                                 both_weights)
        return loss + config.unlabelled_weight * pseudo_label_loss(logits_view, targets, mask), logits

    def _step(self) -> bool:
        """One training step; False when it did not count (out of memory: the batch was halved).

        A loss that is not finite stops the run (``stop_reason``) before the optimizer applies it.
        """
        try:
            loss = self._forward_backward()
        except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are handled
            if not is_out_of_memory(exc):
                raise
            self.ranks.refuse_halving(self.batch.size, self.description)  # ranks must take the same steps
            self.optimizer.zero_grad(set_to_none=True)
            self.batch.halve()
            return False
        self.step += 1
        self.loss_sum += loss.detach()
        self.loss_count += 1
        if self._reporting():
            self.last_loss = float(self.ranks.mean(loss.detach()))  # the same on every rank: they stop together
            if not math.isfinite(self.last_loss):
                self.diverged = True
                self.stop_reason = (f"the loss became {self.last_loss} at step {self.step} (learning rate too high "
                                    "or unusual input values); the last good model was kept")
                log.warning(self.stop_reason)
                return True
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        if self.average is not None:
            self.average.update(self.model)
        return True

    def samples_per_step(self) -> int:
        """Patches per step, over all ranks of a distributed run."""
        return self.batch.size * self.ranks.world_size

    def _evaluating(self) -> bool:
        return self.step % self.config.eval_every == 0 or self.step == self.total

    def _reporting(self) -> bool:
        return self.step % self.report_every == 0 or self._evaluating()

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> Iterator[TrainProgress]:
        """Train, yielding a report after every reported step and a final one (``done``); saves however it ends."""
        self.start = time.perf_counter()
        self.times.append((self.start, 0))
        try:
            while self.step < self.total:
                elapsed = time.perf_counter() - self.start
                time_up = self.config.time_limit_s is not None and elapsed >= self.config.time_limit_s
                # Distributed: rank 0 decides (its clock, its early stopping) and every rank stops here together;
                # its clock also sets every rank's learning rate (a time-limited schedule).
                stop, elapsed = self.ranks.agree(time_up or self.stop_reason is not None, elapsed)
                if stop:
                    self.stop_reason = self.stop_reason or "time limit reached"
                    break
                if self.data.labels_changed():
                    self.data.refresh_labels()
                self._schedule(elapsed)
                if not self._step():
                    continue
                if self.diverged:
                    break
                if self._reporting():
                    yield self._report()
                if self.stop_reason is not None and not self.ranks.distributed:
                    break
            yield self._finish()
        finally:
            if not self.saved:  # stopped from outside (close(), Ctrl-C, an error): save what is kept, quickly
                save_while_stopping(lambda: self._save("stopped", moments=True))

    def _report(self) -> TrainProgress:
        """The report of this step: its rate, and an evaluation and a preview when they are due."""
        now = time.perf_counter()
        self.times.append((now, self.step))
        rate = (self.times[-1][1] - self.times[0][1]) * self.samples_per_step() / max(now - self.times[0][0], 1e-9)
        val, is_best = None, False
        if self._evaluating() and self.ranks.is_main:
            val, is_best = self._evaluate(now - self.start)
            if self.best.count(is_best):
                self.stop_reason = f"early stopping: no better validation score in {self.config.patience} evaluations"
            self.loss_sum.zero_()
            self.loss_count = 0
        return self._progress(self.last_loss, rate, now - self.start, val, is_best, self._preview())

    def _preview(self) -> np.ndarray | None:
        """The softmax of the dataset's preview image, every ``preview_every`` steps (None in between)."""
        every = self.config.preview_every
        if not every or self.step < self.next_preview or not self.ranks.is_main:
            return None
        self.next_preview = (self.step // every + 1) * every
        image = self.dataset.preview_image
        if image is None:
            return None
        scored = self.scored
        scored.eval()
        try:
            probs = predict_probabilities(scored, image, InferConfig(device=str(self.device)))
        finally:
            scored.train()
        return np.asarray(probs, np.float32)

    def _finish(self) -> TrainProgress:
        """Evaluate the last steps (when not just done), save the kept model, and make the final report."""
        if self.stop_reason is None:
            self.stop_reason = "finished"
        final_val = None
        if self.step and not self.diverged and not self._evaluating() and self.ranks.is_main:
            final_val, _ = self._evaluate(time.perf_counter() - self.start)
        model_dir = self._save(self.stop_reason, calibrate=not self.diverged, moments=not self.diverged)
        self.saved = True
        elapsed = time.perf_counter() - self.start
        mean_rate = self.step * self.samples_per_step() / max(elapsed, 1e-9)
        final = self._progress(self.last_loss, mean_rate, elapsed, final_val, False, None)
        final.done, final.stop_reason, final.model_dir, final.eta_s = True, self.stop_reason, model_dir, 0.0
        return final

    def _progress(self, loss, rate, elapsed, val, is_best, preview) -> TrainProgress:
        cfg = self.config
        step_time = elapsed / max(self.step, 1)
        eta = (self.total - self.step) * step_time
        if cfg.time_limit_s is not None:
            eta = min(eta, max(cfg.time_limit_s - elapsed, 0.0))
        return TrainProgress(step=self.step, total_steps=self.total, time_limit_s=cfg.time_limit_s,
                             epoch=(self.step - 1) // cfg.steps_per_epoch + 1, loss=loss, lr=self.lr,
                             samples_per_s=rate, elapsed_s=elapsed, eta_s=eta, val=val, best_score=self.best.score,
                             is_best=is_best, preview=preview, device=self.description,
                             model_dir=self.out_dir if self.keeper.any else None, batch_size=self.batch.size,
                             notice=self.batch.notice)

    def _evaluate(self, elapsed: float) -> tuple[dict | None, bool]:
        """Score the validation set, record history, keep and save the best; return (val, is_best)."""
        cfg = self.config
        train_loss = float(self.loss_sum) / max(self.loss_count, 1)
        entry = {"step": self.step_offset + self.step, "epoch": (self.step - 1) // cfg.steps_per_epoch + 1,
                 "loss": train_loss, "lr": self.lr, "elapsed_s": round(elapsed, 3)}
        validator = self.data.validator
        why = (validator.shortfall(self.dataset.n_classes, cfg.min_val_pixels_per_class, self.origin.class_names)
               if cfg.val_fraction > 0
               else "validation is off (validation fraction 0)")
        val, is_best = {"enough": why is None, "reason": why, **validator.describe()}, False
        entry["val_pixels"] = val["pixels"]
        if why is None:
            val.update(validator.evaluate(self.scored, self.dataset.n_classes, self.data.class_weights, self.autocast))
            entry.update({"val_loss": val["loss"], "mean_f1": val["mean_f1"], "mean_iou": val["mean_iou"],
                          "f1": val["f1"], "iou": val["iou"]})
            is_best = self.best.is_best(val["mean_f1"], val["loss"], self.upright, validator.labelled_fraction)
        else:
            # No score worth the name: the latest model is the one to keep, never a meaningless "best".
            val.update({"mean_f1": None, "mean_iou": None, "f1": None, "iou": None, "loss": None})
            is_best = math.isfinite(train_loss)
        self.history.append(entry)
        if is_best:
            self.keeper.keep(self.scored)
            self._save(None)
        return val, is_best

    # -- saving ------------------------------------------------------------------------------------

    def _save(self, stop_reason: str | None, calibrate: bool = False, moments: bool = False) -> Path | None:
        """Write the kept model; with ``calibrate``, choose its thresholds first.

        With ``moments`` (at the end of a run), the optimizer's current moments are saved beside it, for
        resuming; saves during the run leave them out (they would double or triple what is written).
        """
        if self.keeper.out_dir is None or not self.keeper.keep_if_nothing_kept(self.scored):
            return None
        if calibrate:
            self.keeper.calibrate(self.data.validator, self.dataset.n_classes, self.config, self.device, self.autocast)
        info = self.origin.info(steps=self.step_offset + self.step, stop_reason=stop_reason,
                                batch_size=self.batch.size, history=self.history, best_score=self.best.score,
                                thresholds=self.keeper.thresholds)
        return self.keeper.save(info, optimizer_tensors(self.optimizer) if moments else None)
