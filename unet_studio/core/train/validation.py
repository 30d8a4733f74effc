"""Validation: scoring a model on held-out windows of the labels, and choosing thresholds on them.

The trainer (:mod:`.loop`) evaluates its model on the validation windows (:class:`Validator`) every
``eval_every`` steps: per-class IoU and F1 from a confusion matrix of the labelled pixels, and the masked
loss. A score is only given when the held-out labels can support one (:meth:`Validator.shortfall`):
every class needs ``min_val_pixels_per_class`` held-out labelled pixels; otherwise the report says why
and the run keeps its latest model. The labels are those a person painted: accepted predictions are left
out before the split (:meth:`~.data.TrainingSet.evidence_snapshot`). At the end of a two-class run it
chooses per-class thresholds (:func:`calibrate_thresholds`) on the softmax of the labelled validation pixels.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch.nn import functional as F

from ..config import ModelConfig, TrainConfig
from .data import TrainingSet
from .losses import segmentation_loss
from ..model import UNet, nearest_admissible, output_size

log = logging.getLogger(__name__)


def _pad_for_network(x: torch.Tensor, config: ModelConfig) -> tuple[torch.Tensor, tuple[int, int]]:
    """Mirror-pad an NCHW tensor so that the network's output covers it; return it and the output offset."""
    height, width = x.shape[-2:]
    pads, offset = [], []
    for size in (height, width):
        if config.padding == "same":
            total = nearest_admissible(size, config.depth, "same")[1] - size
            before = total // 2
            pads.append((before, total - before))
            offset.append(before)
        else:
            cand = nearest_admissible(size, config.depth, "valid")[1]
            while output_size(cand, config.depth, "valid") < size:
                cand = nearest_admissible(cand + 1, config.depth, "valid")[1]
            margin = (cand - output_size(cand, config.depth, "valid")) // 2
            extra = output_size(cand, config.depth, "valid") - size
            pads.append((margin + extra // 2, cand - size - margin - extra // 2))
            offset.append(extra // 2)
    (top, bottom), (left, right) = pads
    if max(top, bottom) < height and max(left, right) < width:
        x = F.pad(x, (left, right, top, bottom), mode="reflect")
    else:
        x = F.pad(x, (left, right, top, bottom), mode="replicate")
    return x, (offset[0], offset[1])


@torch.no_grad()
def forward_whole(model: UNet, image: torch.Tensor) -> torch.Tensor:
    """Logits (N, K, H, W) of a whole (N, C, H, W) image batch, padded to an admissible size."""
    height, width = image.shape[-2:]
    padded, (top, left) = _pad_for_network(image, model.config)
    logits = model(padded)
    return logits[..., top : top + height, left : left + width]


def _confusion(logits: torch.Tensor, targets: torch.Tensor, n_classes: int) -> torch.Tensor:
    labelled = targets > 0
    pred = logits.argmax(1)[labelled]
    true = targets[labelled] - 1
    return torch.bincount(true * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def scores_from_confusion(confusion: np.ndarray) -> dict:
    """Per-class IoU and F1 (None for a class with no labelled pixel) and their means over the classes."""
    confusion = np.asarray(confusion, np.float64)
    tp = np.diag(confusion)
    fp = confusion.sum(0) - tp
    fn = confusion.sum(1) - tp
    present = confusion.sum(1) > 0
    iou = [float(t / (t + p + n)) if ok and t + p + n > 0 else None for t, p, n, ok in zip(tp, fp, fn, present)]
    f1 = [float(2 * t / (2 * t + p + n)) if ok and t + p + n > 0 else None for t, p, n, ok in zip(tp, fp, fn, present)]
    valid_iou = [v for v in iou if v is not None]
    valid_f1 = [v for v in f1 if v is not None]
    return {"iou": iou, "f1": f1, "mean_iou": float(np.mean(valid_iou)) if valid_iou else None,
            "mean_f1": float(np.mean(valid_f1)) if valid_f1 else None}


class Validator:
    """Validation windows with some context, on the device, and their scoring.

    ``labels`` are the labels a person painted (accepted predictions removed: see
    :meth:`~.data.TrainingSet.evidence_snapshot`); ``items`` are (dataset index, window) pairs.
    """

    CONTEXT = 32

    def __init__(self, dataset: TrainingSet, items, labels, device: torch.device) -> None:
        self.items = []
        for index, (rows, cols) in items:
            h, w = labels[index].shape
            r0, r1 = max(rows.start - self.CONTEXT, 0), min(rows.stop + self.CONTEXT, h)
            c0, c1 = max(cols.start - self.CONTEXT, 0), min(cols.stop + self.CONTEXT, w)
            image = torch.from_numpy(dataset.images[index][:, r0:r1, c0:c1].copy())[None].to(device)
            target = torch.from_numpy(labels[index][rows, cols].copy())[None].to(device)
            inner = (slice(rows.start - r0, rows.stop - r0), slice(cols.start - c0, cols.stop - c0))
            self.items.append((image, target, inner))
        # Counted once from the host arrays (the items never change): the number of labelled pixels, and
        # their share of all validation pixels (1.0 for full masks, small for scribbles).
        windows = [labels[index][rows, cols] for index, (rows, cols) in items]
        self.labelled_pixels = int(sum(np.count_nonzero(w) for w in windows))
        total = sum(w.size for w in windows)
        self.labelled_fraction = self.labelled_pixels / total if total else 0.0
        n_values = max([int(w.max()) + 1 for w in windows if w.size] + [1])
        counts = sum((np.bincount(w.ravel(), minlength=n_values) for w in windows), np.zeros(n_values, np.int64))
        self.class_pixels = [int(c) for c in counts[1:]]  # held-out labelled pixels of class 1, 2, ...
        self.item_indices = sorted({index for (index, _), w in zip(items, windows) if np.count_nonzero(w)})

    def shortfall(self, n_classes: int, min_pixels: int, class_names=None) -> str | None:
        """Why these held-out labels cannot support a score (None when they can); ``class_names`` name
        the classes in the answer ("class k" without them).

        Every class must have ``min_pixels`` held-out labelled pixels: a class missing from the held-out
        part makes the mean F1 that of the other classes alone (1.000 when the model paints everything
        background), and a few strokes of a class score its easy middle, not the model.
        """
        if not self.items or self.labelled_pixels == 0:
            return "no painted labels could be held out: paint on another slice or image too"
        counts = list(self.class_pixels[:n_classes]) + [0] * max(0, n_classes - len(self.class_pixels))
        short = [k for k, count in enumerate(counts) if count < min_pixels]
        if not short:
            return None
        names = list(class_names or [])
        named = ", ".join(f"{names[k] if k < len(names) else f'class {k + 1}'}: {counts[k]:,} px" for k in short)
        return f"held out {named}; each class needs {min_pixels:,}"

    def describe(self) -> dict:
        """What a score is computed on: held-out labelled pixels (all, per class, and as a share of the
        held-out windows: small for strokes), and the dataset items they lie in."""
        return {"pixels": self.labelled_pixels, "class_pixels": list(self.class_pixels),
                "items": list(self.item_indices), "labelled_fraction": self.labelled_fraction}

    def __bool__(self) -> bool:
        return bool(self.items)

    @torch.no_grad()
    def evaluate(self, model: UNet, n_classes: int, class_weights, autocast) -> dict:
        model.eval()
        confusion = torch.zeros(n_classes, n_classes, dtype=torch.long, device=self.items[0][0].device)
        loss_sum, weight_sum = 0.0, 0
        try:
            for image, target, (rows, cols) in self.items:
                with autocast():
                    logits = forward_whole(model, image)[..., rows, cols].float()
                confusion += _confusion(logits, target, n_classes)
                labelled = int((target > 0).sum())
                loss_sum += float(segmentation_loss(logits, target, "ce", class_weights)) * labelled
                weight_sum += labelled
        finally:
            model.train()
        result = scores_from_confusion(confusion.cpu().numpy())
        result["loss"] = loss_sum / max(weight_sum, 1)
        return result

    @torch.no_grad()
    def labelled_probabilities(self, model: UNet, autocast) -> tuple[np.ndarray, np.ndarray]:
        """Softmax (K, N) of the N labelled validation pixels and their class indices (N,), for
        :func:`calibrate_thresholds`."""
        probs, truth = [], []
        model.eval()
        for image, target, (rows, cols) in self.items:
            with autocast():
                logits = forward_whole(model, image)[..., rows, cols].float()
            labelled = target[0] > 0
            probs.append(torch.softmax(logits, 1)[0][:, labelled].cpu().numpy())
            truth.append((target[0][labelled] - 1).cpu().numpy())
        return np.concatenate(probs, 1), np.concatenate(truth)


def calibrate_thresholds(probs: np.ndarray, truth: np.ndarray, gain: float = 1e-3) -> list[float]:
    """Thresholds (see ``probabilities_to_labels``) maximising the mean F1 of two classes.

    ``probs`` is (2, N) softmax of N labelled pixels, ``truth`` their class indices. The rarer class
    gets a threshold from 0.05 to 0.95; among the thresholds within 0.01% of the best score the one
    nearest 0.5 wins, and the result is [] (plain argmax) unless it beats 0.5 by ``gain``.
    """
    if probs.shape[0] != 2 or truth.size == 0 or len(np.unique(truth)) < 2:
        return []
    rare = int(np.argmin(np.bincount(truth, minlength=2)))
    p, is_rare = probs[rare], truth == rare
    order = np.argsort(-p, kind="stable")
    p_sorted, hits = p[order], np.cumsum(is_rare[order])
    n, positives = p.size, int(is_rare.sum())
    candidates = np.round(np.arange(0.05, 0.951, 0.01), 4)
    scores = []
    for t in candidates:
        chosen = int(np.searchsorted(-p_sorted, -t, side="right"))  # pixels with p >= t
        tp = int(hits[chosen - 1]) if chosen else 0
        fp, fn = chosen - tp, positives - tp
        tn = n - tp - fp - fn
        f1_rare = 2 * tp / max(2 * tp + fp + fn, 1)
        f1_other = 2 * tn / max(2 * tn + fp + fn, 1)
        scores.append((f1_rare + f1_other) / 2)
    scores = np.asarray(scores)
    near_best = np.flatnonzero(scores >= scores.max() - 1e-4)
    best = near_best[np.argmin(np.abs(candidates[near_best] - 0.5))]
    at_half = scores[int(np.argmin(np.abs(candidates - 0.5)))]
    if scores[best] < at_half + gain:
        return []
    thresholds = [0.0, 0.0]
    thresholds[rare] = float(candidates[best])
    return thresholds


def calibration_allowed(validator: Validator, n_classes: int, config: TrainConfig) -> bool:
    """Whether thresholds may be chosen on this validation data (two classes, enough full-mask pixels)."""
    if not validator or n_classes != 2:
        return False
    if validator.shortfall(n_classes, config.min_val_pixels_per_class) is not None:
        return False
    if validator.labelled_pixels < config.calibration_min_pixels:
        # One held-out 512x512 ISBI slice (262k pixels) gave thresholds that moved test F1 by -0.005
        # to 0 in four runs; three slices gained 0.006. Too little validation: keep argmax.
        log.info("%d validation pixels: too few to choose thresholds", validator.labelled_pixels)
        return False
    if validator.labelled_fraction < config.dense_fraction:
        # Scribbles mark the easy middles of structures, not their boundaries: a threshold chosen on
        # them is biased (ISBI scribbles: membrane F1 0.773 with argmax, 0.761 with it). Keep argmax.
        log.info("validation labels cover %.0f%% of their pixels: no threshold calibration",
                 100 * validator.labelled_fraction)
        return False
    return True
