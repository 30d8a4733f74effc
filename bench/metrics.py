"""Accuracy measures shared by the benchmarks: pixel F1 and the DSB 2018 object metric.

- :func:`pixel_f1`: F1 (Dice) of one class over all the pixels given, ``2 TP / (|pred| + |truth|)``.
  Pass whole stacks (or concatenated images) to get the pooled figure over a test set.
- :func:`match_objects` / :func:`average_precision`: the 2018 Data Science Bowl definition. Objects of a
  prediction and of the truth (label images, 0 = background, any other value = one object) are matched
  one to one when their intersection over union is above a threshold ``t``; at ``t >= 0.5`` such a match is
  unique on both sides, so no assignment problem arises. ``AP(t) = TP / (TP + FP + FN)``, and the DSB score
  of an image is the mean of ``AP(t)`` over ``t = 0.5, 0.55, ..., 0.95``; the score of a test set is the
  mean over its images (:func:`mean_average_precision`).

Object ids need not be consecutive: only the values present count as objects.
"""

from __future__ import annotations

import numpy as np

#: The IoU thresholds of the DSB 2018 metric: 0.5, 0.55, ..., 0.95.
DSB_THRESHOLDS = np.round(np.linspace(0.5, 0.95, 10), 2)


def pixel_f1(pred: np.ndarray, truth: np.ndarray) -> float:
    """F1 of a binary class over all pixels: ``2 TP / (|pred| + |truth|)``.

    Parameters
    ----------
    pred, truth : numpy.ndarray
        Boolean masks of the same shape (any number of dimensions: a stack pools its images).

    Returns
    -------
    float
        The F1 score; 1.0 when both masks are empty.
    """
    pred, truth = np.asarray(pred, bool), np.asarray(truth, bool)
    if pred.shape != truth.shape:
        raise ValueError(f"pixel_f1: shapes differ, {pred.shape} against {truth.shape}")
    tp = int(np.logical_and(pred, truth).sum())
    total = int(pred.sum()) + int(truth.sum())
    return 2.0 * tp / total if total else 1.0


def _compact(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Object ids mapped to 1..N (0 stays background); return them and N."""
    labels = np.asarray(labels)
    if labels.dtype.kind not in "iub":
        raise ValueError(f"object label images must be integer, not {labels.dtype}")
    values, inverse = np.unique(labels.ravel(), return_inverse=True)
    if values[0] != 0:  # no background at all: every value is an object
        inverse = inverse + 1
        return inverse.reshape(labels.shape), len(values)
    return inverse.reshape(labels.shape), len(values) - 1


def iou_matrix(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Intersection over union of every true object (rows) with every predicted object (columns).

    Parameters
    ----------
    pred, truth : numpy.ndarray
        Integer label images of the same shape, 0 = background.

    Returns
    -------
    numpy.ndarray
        ``(n_true, n_pred)`` float64 array; objects in increasing order of their ids.
    """
    if np.shape(pred) != np.shape(truth):
        raise ValueError(f"iou_matrix: shapes differ, {np.shape(pred)} against {np.shape(truth)}")
    pred, n_pred = _compact(pred)
    truth, n_true = _compact(truth)
    # contingency table of overlaps, one bincount (row and column 0 = background)
    joint = np.bincount(truth.ravel().astype(np.int64) * (n_pred + 1) + pred.ravel().astype(np.int64),
                        minlength=(n_true + 1) * (n_pred + 1)).reshape(n_true + 1, n_pred + 1)
    inter = joint[1:, 1:].astype(np.float64)
    area_true, area_pred = joint[1:, :].sum(1), joint[:, 1:].sum(0)
    union = area_true[:, None] + area_pred[None, :] - inter
    return inter / np.maximum(union, 1)


def match_objects(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of objects matched at IoU > ``threshold``.

    Parameters
    ----------
    pred, truth : numpy.ndarray
        Integer label images, 0 = background.
    threshold : float
        IoU a pair must exceed to match; at least 0.5, so that a match is one to one.

    Returns
    -------
    tuple of int
        ``(tp, fp, fn)``.
    """
    if threshold < 0.5:
        raise ValueError("match_objects needs a threshold of at least 0.5 (one-to-one matches)")
    iou = iou_matrix(pred, truth)
    n_true, n_pred = iou.shape
    tp = int((iou > threshold).sum())
    return tp, n_pred - tp, n_true - tp


def average_precision(pred: np.ndarray, truth: np.ndarray, thresholds=DSB_THRESHOLDS) -> np.ndarray:
    """The DSB 2018 AP of one image at each IoU threshold: ``TP / (TP + FP + FN)``.

    Parameters
    ----------
    pred, truth : numpy.ndarray
        Integer label images of the same shape, 0 = background.
    thresholds : sequence of float
        IoU thresholds (default 0.5, 0.55, ..., 0.95).

    Returns
    -------
    numpy.ndarray
        One AP per threshold; 1.0 where both images have no object, 0.0 where only one has.
    """
    iou = iou_matrix(pred, truth)
    n_true, n_pred = iou.shape
    if n_true == 0 or n_pred == 0:
        return np.full(len(thresholds), float(n_true == n_pred))
    out = []
    for t in thresholds:
        tp = int((iou > t).sum())  # IoU > 0.5 makes a match unique on both sides
        out.append(tp / (n_pred + n_true - tp))
    return np.asarray(out)


def mean_average_precision(preds, truths, thresholds=DSB_THRESHOLDS) -> np.ndarray:
    """AP per threshold averaged over images (the DSB 2018 score of a test set is its mean).

    Parameters
    ----------
    preds, truths : sequence of numpy.ndarray
        Predicted and true label images, paired by position.
    thresholds : sequence of float
        IoU thresholds (default 0.5, 0.55, ..., 0.95).

    Returns
    -------
    numpy.ndarray
        Mean AP over the images, one value per threshold: ``[0]`` is AP@0.5, ``.mean()`` the DSB score.
    """
    preds, truths = list(preds), list(truths)
    if len(preds) != len(truths) or not preds:
        raise ValueError(f"mean_average_precision: {len(preds)} predictions for {len(truths)} truths")
    return np.mean([average_precision(p, t, thresholds) for p, t in zip(preds, truths)], axis=0)
