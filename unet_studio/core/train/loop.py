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
its patch size and augmentation ranges: :mod:`.training_setup`.
"""

from __future__ import annotations

import copy
import logging
import math
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from . import augment as aug
from ..model.checkpoint import ModelInfo, load_optimizer_state, save_model
from ..config import ModelConfig, TrainConfig
from .data import PatchSampler, TrainingSet, split_validation
from ..device import (
    configure_cpu_threads,
    describe_device,
    is_out_of_memory,
    select_device,
    training_autocast_dtype,
)
from ..errors import DataError, TrainingError
from .losses import class_weights_from_counts, segmentation_loss
from ..model.unet import UNet, output_size
from .setup import (
    admissible_patch,
    augment_params,
    border_maps,
    build_model,
    optimizer_tensors,
    restore_optimizer,
)
from .validation import (  # calibrate_thresholds is looked up here when used (tests replace it)
    Validator,
    calibrate_thresholds,
    forward_whole,
    scores_from_confusion,  # noqa: F401  (re-exported)
)

log = logging.getLogger(__name__)


@dataclass
class TrainProgress:
    """One report of a running training (see docs/CONTRACTS.md).

    ``step`` counts the steps of this run (1-based); the model folder's history counts steps over
    all runs of a resumed model. ``val`` is None between evaluations, else a dict with per-class
    lists "iou" and "f1" (None for a class absent from the validation labels), "mean_iou",
    "mean_f1" and "loss". ``preview`` is the (K, Y, X) softmax of the dataset's preview image, now
    and then.
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


DENSE_FRACTION = 0.9  # validation labels covering at least this share of their pixels count as full masks
MIN_CALIBRATION_PIXELS = 500_000  # labelled validation pixels needed to choose thresholds on them
TIE = 0.005  # on sparse validation labels and in a run's upright part, scores this close to the best are ties


def learning_rate(config: TrainConfig, progress: float, step: int) -> float:
    """Warm-up over the first ``warmup_steps`` steps, then cosine decay to 1% by ``progress`` = 1."""
    base = config.learning_rate
    warm = min(1.0, (step + 1) / max(1, config.warmup_steps))
    if config.schedule == "constant":
        return base * warm
    progress = min(max(progress, 0.0), 1.0)
    return base * warm * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def _predict_preview(model: UNet, image: np.ndarray, device: torch.device) -> np.ndarray:
    try:
        from ..predict.tiled import predict_probabilities
    except ImportError:
        predict_probabilities = None
    if predict_probabilities is not None:
        from ..config import InferConfig

        return np.asarray(predict_probabilities(model, image, InferConfig(device=str(device))), np.float32)
    x = torch.from_numpy(image)[None].to(device)
    return torch.softmax(forward_whole(model, x).float(), 1)[0].cpu().numpy()


def train(dataset: TrainingSet, model_config: ModelConfig, train_config: TrainConfig, *, out_dir=None,
          init_from=None, class_values=None, class_names=None) -> Iterator[TrainProgress]:
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
    class_values, class_names
        Saved in the model folder (values written in predicted label images); default 1..K.

    The generator ends after a final report with ``done=True`` and ``stop_reason`` (finished, time
    limit, early stopping, or a non-finite loss). Stopping it early (``close()``) also saves.
    """
    return _Trainer(dataset, model_config, train_config, out_dir, init_from, class_values, class_names).run()


class _Trainer:
    def __init__(self, dataset, model_config, config, out_dir, init_from, class_values, class_names):
        self.dataset, self.config = dataset, config
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.device = select_device(config.device)
        if self.device.type == "cpu":
            configure_cpu_threads(config.num_threads)
        torch.manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed)
        (self.model, self.history, self.step_offset, self.class_values, self.class_names,
         self.previous) = build_model(dataset, model_config, init_from, class_values, class_names)
        self.init_from = init_from
        # Read with the weights, before this run's first save can replace the folder (continuing in place).
        self.resume_moments = load_optimizer_state(init_from) if init_from is not None else None
        self.optimizer: torch.optim.Optimizer | None = None  # set when the run starts
        self.model_config = self.model.config
        self.patch = admissible_patch(config.patch_size, self.model_config)
        self.out_patch = output_size(self.patch, self.model_config.depth, self.model_config.padding)
        self.params = augment_params(config)
        self.crop = aug.crop_size(self.patch, self.params)
        # The last part of the run (after ``orientation_until``) keeps every other augmentation but no
        # flips or 90-degree rotations (see the module docs); the crop size does not depend on them.
        self.upright_params = None if self.params is None else replace(self.params, flips=False)
        self.upright = False

    # -- data --------------------------------------------------------------------------------------

    def _prepare_data(self) -> None:
        labels, self.data_version = self.dataset.snapshot()
        self.split = split_validation(labels, self.config.val_fraction, self.rng)
        self._refresh_labels(labels)

    def _refresh_labels(self, labels: list[np.ndarray]) -> None:
        train_labels = self.split.train_labels(labels)
        if not any(lab.any() for lab in train_labels):
            raise DataError("no labelled pixel left for training after the validation split; "
                            "label more or lower the validation fraction")
        counts = self.dataset.class_counts(train_labels)
        power = self.config.class_balance_power if self.config.class_balance else 0.0
        weights = class_weights_from_counts(counts, power)
        self.class_weights = torch.from_numpy(weights).to(self.device)
        if hasattr(self, "sampler"):
            self.sampler.set_labels(train_labels)
            if self.config.use_border_weights and self.dataset.instances is None:
                self.sampler.set_weights(border_maps(self.dataset, labels, self.config))
        else:
            borders = border_maps(self.dataset, labels, self.config)
            self.sampler = PatchSampler(self.dataset.images, train_labels, borders, self.crop,
                                        self.config.labelled_bias, self.rng, self.dataset.n_classes)
        self.validator = Validator(self.dataset, self.split.val_items, labels, self.device)

    def _forward_backward(self, model, optimizer, scaler, autocast) -> torch.Tensor:
        """One batch: sample, augment, forward, loss, backward (the optimizer steps later); return the loss."""
        images, labels, weights = self._batch()
        with autocast():
            logits = model(images)
        loss = segmentation_loss(logits.float(), labels, self.config.loss, self.class_weights, weights)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        return loss

    def _smaller_batch(self, exc: BaseException) -> None:
        """After an out-of-memory error: halve the batch and go on, or say what to do at a batch of one."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if self.batch_size <= 1:
            raise TrainingError(
                f"out of memory on {describe_device(self.device)} even with one {self.patch}x{self.patch} patch "
                "per step; close other programs that use it, choose the fast preset or a smaller network, or "
                "train on the CPU (--device cpu)") from None
        old, self.batch_size = self.batch_size, self.batch_size // 2
        self.notice = f"out of memory with {old} patches per step; going on with {self.batch_size}"
        log.warning(self.notice)

    def _batch(self):
        batch = self.sampler.sample(self.batch_size)
        images = torch.from_numpy(batch.images).to(self.device, non_blocking=True)
        labels = torch.from_numpy(batch.labels).to(self.device, non_blocking=True)
        weights = None if batch.weights is None else torch.from_numpy(batch.weights).to(self.device, non_blocking=True)
        params = self.upright_params if self.upright else self.params
        images, labels, weights = aug.augment_batch(images, labels, weights, self.patch, params, self.generator)
        if self.out_patch != self.patch:  # valid convolutions: targets are the centre of the patch
            top = (self.patch - self.out_patch) // 2
            window = (..., slice(top, top + self.out_patch), slice(top, top + self.out_patch))
            labels = labels[window]
            weights = None if weights is None else weights[window]
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, labels, weights

    # -- saving ------------------------------------------------------------------------------------

    def _info(self, best_score, stop_reason=None) -> ModelInfo:
        extra = dict(self.previous.extra) if self.previous is not None else {}
        extra.update({"steps": self.step_offset + self.step, "stop_reason": stop_reason,
                      "resumed_from": str(self.init_from) if self.init_from else extra.get("resumed_from"),
                      "patch_size": self.patch, "batch_size": self.batch_size})
        normalization = (self.previous.normalization if self.previous is not None
                         else {"method": "percentile", "low": 1.0, "high": 99.8})
        return ModelInfo(model_config=self.model_config, class_values=self.class_values,
                         class_names=self.class_names, normalization=normalization,
                         train_config=self.config.to_dict(), history=copy.deepcopy(self.history),
                         best_score=best_score, extra=extra, thresholds=list(self.thresholds))

    def _calibrate(self, autocast) -> None:
        """Choose the kept model's thresholds on the validation data (two classes; see calibrate_thresholds)."""
        if not self.validator or self.dataset.n_classes != 2:
            return
        if self.validator.labelled_pixels < MIN_CALIBRATION_PIXELS:
            # One held-out 512x512 ISBI slice (262k pixels) gave thresholds that moved test F1 by -0.005
            # to 0 in four runs; three slices gained 0.006. Too little validation: keep argmax.
            log.info("%d validation pixels: too few to choose thresholds", self.validator.labelled_pixels)
            return
        if self.validator.labelled_fraction < DENSE_FRACTION:
            # Scribbles mark the easy middles of structures, not their boundaries: a threshold chosen on
            # them is biased (ISBI scribbles: membrane F1 0.773 with argmax, 0.761 with it). Keep argmax.
            log.info("validation labels cover %.0f%% of their pixels: no threshold calibration",
                     100 * self.validator.labelled_fraction)
            return
        net = copy.deepcopy(self.kept).to(self.device)
        try:
            self.thresholds = calibrate_thresholds(*self.validator.labelled_probabilities(net, autocast))
        except Exception:  # noqa: BLE001 - calibration is an extra: never lose the model over it
            log.exception("could not calibrate the thresholds; predictions use plain argmax")
            self.thresholds = []

    def _keep(self) -> None:
        """Remember the current weights as the ones to save."""
        self.kept.load_state_dict(self.model.state_dict())
        self.kept_any = True

    def _save(self, stop_reason=None, calibrate=None, moments=False) -> Path | None:
        """Write the kept model; with ``calibrate`` (the autocast context), choose its thresholds first.

        With ``moments`` (at the end of a run), the optimizer's current moments are saved beside it, for
        resuming; saves during the run leave them out (they would double or triple what is written).
        """
        if self.out_dir is None:
            return None
        if not self.kept_any:
            if not all(torch.isfinite(p).all() for p in self.model.state_dict().values() if p.is_floating_point()):
                return None
            self._keep()
        if calibrate is not None:
            self._calibrate(calibrate)
        state = optimizer_tensors(self.optimizer) if moments and self.optimizer is not None else None
        save_model(self.out_dir, self.kept, self._info(self.best_score, stop_reason), optimizer_state=state)
        return self.out_dir

    # -- the loop ----------------------------------------------------------------------------------

    def run(self) -> Iterator[TrainProgress]:
        cfg, device = self.config, self.device
        self.step, self.best_score, self.kept_any = 0, None, False
        self.batch_size, self.notice = self.config.batch_size, None
        self.thresholds: list[float] = []
        self.kept = copy.deepcopy(self.model).cpu()
        self._prepare_data()
        model = self.model.to(device)
        # Channels-last pays on CUDA and on the CPU (oneDNN): 205 vs 249 ms per fast-preset step here.
        self.channels_last = device.type in ("cuda", "cpu")
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        model.train()
        dtype = training_autocast_dtype(device, cfg.amp)
        scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 and device.type == "cuda" else None

        def autocast():
            return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        if self.resume_moments:
            if restore_optimizer(optimizer, self.resume_moments):
                log.info("resuming with the optimizer state saved in %s", self.init_from)
            else:
                log.warning("the optimizer state in %s does not fit this network; starting with fresh moments",
                            self.init_from)
        self.optimizer = optimizer
        total = cfg.epochs * cfg.steps_per_epoch
        report_every = 1 if device.type == "cpu" else 10  # yielding needs the loss on the host: a sync
        description = describe_device(device)
        start = time.perf_counter()
        times: deque[tuple[float, int]] = deque(maxlen=21)
        times.append((start, 0))
        loss_sum = torch.zeros((), device=device)
        loss_count, since_best, stop_reason, last_loss = 0, 0, None, float("nan")
        next_preview = cfg.preview_every
        try:
            while self.step < total:
                elapsed = time.perf_counter() - start
                if cfg.time_limit_s is not None and elapsed >= cfg.time_limit_s:
                    stop_reason = "time limit reached"
                    break
                if self.dataset.version != self.data_version:
                    labels, self.data_version = self.dataset.snapshot()
                    self._refresh_labels(labels)
                progress = self.step / total
                if cfg.time_limit_s:
                    progress = max(progress, elapsed / cfg.time_limit_s)
                lr = learning_rate(cfg, progress, self.step)
                if not self.upright and self.params is not None and progress >= cfg.orientation_until:
                    # The upright part: its first evaluation is kept whatever its score (module docs).
                    self.upright, self.best_score, since_best = True, None, 0
                    log.info("step %d: training on without flips and 90-degree rotations", self.step)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                try:
                    loss = self._forward_backward(model, optimizer, scaler, autocast)
                except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are handled
                    if not is_out_of_memory(exc):
                        raise
                    optimizer.zero_grad(set_to_none=True)
                    self._smaller_batch(exc)
                    continue
                self.step += 1
                loss_sum += loss.detach()
                loss_count += 1
                evaluate = self.step % cfg.eval_every == 0 or self.step == total
                if self.step % report_every == 0 or evaluate:
                    last_loss = float(loss.detach())
                    if not math.isfinite(last_loss):
                        stop_reason = (f"the loss became {last_loss} at step {self.step} (learning rate too high "
                                       "or unusual input values); the last good model was kept")
                        log.warning(stop_reason)
                        break
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                if self.step % report_every and not evaluate:
                    continue
                now = time.perf_counter()
                times.append((now, self.step))
                rate = (times[-1][1] - times[0][1]) * self.batch_size / max(now - times[0][0], 1e-9)
                val, is_best = None, False
                if evaluate:
                    val, is_best, stop_reason = self._evaluate(model, loss_sum, loss_count, lr, now - start,
                                                               since_best, autocast)
                    since_best = 0 if is_best else since_best + 1
                    loss_sum.zero_()
                    loss_count = 0
                preview = None
                if cfg.preview_every and self.step >= next_preview:
                    next_preview = (self.step // cfg.preview_every + 1) * cfg.preview_every
                    image = self.dataset.preview_image
                    if image is not None:
                        model.eval()
                        try:
                            preview = _predict_preview(model, image, device)
                        finally:
                            model.train()
                yield self._progress(total, last_loss, lr, rate, now - start, val, is_best, preview,
                                     description)
                if stop_reason is not None:
                    break
            if stop_reason is None:
                stop_reason = "finished"
            final_val = None
            diverged = stop_reason.startswith("the loss")
            if self.step and not diverged and (self.step % cfg.eval_every) and self.step != total:
                final_val, _, _ = self._evaluate(model, loss_sum, loss_count, lr, time.perf_counter() - start,
                                                 -1, autocast)
            model_dir = self._save(stop_reason, calibrate=None if diverged else autocast, moments=not diverged)
            self.saved = True
            now = time.perf_counter()
            mean_rate = self.step * self.batch_size / max(now - start, 1e-9)
            final = self._progress(total, last_loss, lr, mean_rate, now - start, final_val, False, None, description)
            final.done, final.stop_reason, final.model_dir, final.eta_s = True, stop_reason, model_dir, 0.0
            yield final
        finally:
            if not getattr(self, "saved", False):
                # Stopped from outside (close(), Ctrl-C, an error): save what is kept, quickly.
                pending = sys.exc_info()[1]
                try:
                    self._save("stopped", moments=True)
                except Exception as exc:  # noqa: BLE001 - never mask the reason we are stopping
                    # No traceback; and when an error stops us (often this same failed write), that error
                    # is what the person hears about.
                    log.log(logging.DEBUG if isinstance(pending, Exception) else logging.WARNING,
                            "could not save the model while stopping: %s", exc)
                self.saved = True

    def _progress(self, total, loss, lr, rate, elapsed, val, is_best, preview, description) -> TrainProgress:
        cfg = self.config
        step_time = elapsed / max(self.step, 1)
        eta = (total - self.step) * step_time
        if cfg.time_limit_s is not None:
            eta = min(eta, max(cfg.time_limit_s - elapsed, 0.0))
        return TrainProgress(step=self.step, total_steps=total, epoch=(self.step - 1) // cfg.steps_per_epoch + 1,
                             loss=loss, lr=lr, samples_per_s=rate, elapsed_s=elapsed, eta_s=eta, val=val,
                             best_score=self.best_score, is_best=is_best, preview=preview,
                             device=description, model_dir=self.out_dir if self.kept_any else None,
                             batch_size=self.batch_size, notice=self.notice)

    def _evaluate(self, model, loss_sum, loss_count, lr, elapsed, since_best, autocast):
        """Score the validation set, record history, keep/save the best; return (val, is_best, stop)."""
        cfg = self.config
        train_loss = float(loss_sum) / max(loss_count, 1)
        entry = {"step": self.step_offset + self.step, "epoch": (self.step - 1) // cfg.steps_per_epoch + 1,
                 "loss": train_loss, "lr": lr, "elapsed_s": round(elapsed, 3)}
        val, is_best, stop = None, False, None
        if self.validator:
            val = self.validator.evaluate(model, self.dataset.n_classes, self.class_weights, autocast)
            entry.update({"val_loss": val["loss"], "mean_f1": val["mean_f1"], "mean_iou": val["mean_iou"],
                          "f1": val["f1"], "iou": val["iou"]})
            score = val["mean_f1"]
            # Scribbles only label the easy middles of structures: their F1 saturates and wobbles, and a
            # strict maximum would keep an early model (ISBI scribbles: 0.973 at step 700, 0.971 at 1650).
            # In the upright part of a run, what the network learns (a label convention, a fraction of a
            # pixel) is smaller than the wobble of the scores of one held-out image (ISBI, one run: 0.9025
            # 50 steps into it, 0.8931 to 0.9006 after), and a strict maximum keeps the model that has
            # learnt least of it. Among scores tied within that noise, keep the later model.
            tie = TIE if self.upright or self.validator.labelled_fraction < DENSE_FRACTION else 0.0
            if score is not None and math.isfinite(val["loss"]) and (self.best_score is None
                                                                    or score > self.best_score - tie):
                self.best_score, is_best = max(score, self.best_score or score), True
        elif math.isfinite(train_loss):
            is_best = True  # no validation data: the latest model is the one to keep
        self.history.append(entry)
        if is_best:
            self._keep()
            self._save(None)
        elif since_best >= 0 and since_best + 1 >= cfg.patience:
            stop = f"early stopping: no better validation score in {cfg.patience} evaluations"
        return val, is_best, stop

