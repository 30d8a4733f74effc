"""Training data in memory: the images and label images, the patch sampler and the validation split.

Inside the core a label image is always ``int64``-compatible with 0 = unlabelled and 1..K = class K
(reading folders of files and mapping their values to classes: :mod:`.folders`).

The sampler crops a slightly larger region around a random centre (biased toward annotated pixels,
class by class, so that thin strokes of a rare class are seen often); the geometric augmentation
(:mod:`.augment`) then resamples the patch from that region on the training device.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass

import numpy as np

from ..errors import DataError

log = logging.getLogger(__name__)


@dataclass
class PatchBatch:
    """Crops for one training step (numpy, on the host).

    ``images`` (B, C, S, S) float32, ``labels`` (B, S, S) int64 (0 = unlabelled),
    ``weights`` (B, S, S) float32 border weights or None.
    """

    images: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None


class TrainingSet:
    """Images and label images for training (2D: one item per slice).

    Parameters
    ----------
    images
        List of (C, Y, X) float32 arrays, normalised (see ``io.normalize_percentile``); sizes may differ.
    labels
        List of (Y, X) integer arrays, 0 = unlabelled, 1..K = class.
    n_classes
        K, the number of classes (output channels of the network).
    instances
        Optional list of (Y, X) instance label images (0 = background, 1..N objects), used for the
        border weights of the paper. When None and border weights are asked for, the instances are the
        connected components of the last class (the "object" class, e.g. cell interiors).
    accepted
        Optional list of (Y, X) boolean masks (or None items): labelled pixels that came from an accepted
        prediction and were not painted over since. They are trained on but never validated on: the
        model agrees with them by construction (see :func:`split_validation`).

    ``update_labels`` and ``set_preview_image`` may be called from another thread while training runs;
    the training loop sees the new labels at its next step.
    """

    def __init__(self, images, labels, n_classes: int, instances=None, accepted=None) -> None:
        if len(images) != len(labels):
            raise DataError(f"{len(images)} images but {len(labels)} label images")
        if not images:
            raise DataError("no training images")
        if n_classes < 2:
            raise DataError(f"at least two classes are needed to train, got {n_classes}")
        self.n_classes = int(n_classes)
        self._lock = threading.Lock()
        self._version = 0
        self.images: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        for index, (image, label) in enumerate(zip(images, labels)):
            image = np.asarray(image, dtype=np.float32)
            if image.ndim == 2:
                image = image[None]
            if image.ndim != 3:
                raise DataError(f"image {index}: expected (C, Y, X), got shape {image.shape}")
            if not np.isfinite(image).all():
                raise DataError(f"image {index} holds NaN or infinite values; normalise it first")
            self.images.append(np.ascontiguousarray(image))
            self.labels.append(self._check_labels(index, label))
        channels = {im.shape[0] for im in self.images}
        if len(channels) != 1:
            raise DataError(f"all images must have the same number of channels, got {sorted(channels)}")
        self.in_channels = channels.pop()
        self.instances = None if instances is None else [np.asarray(i) for i in instances]
        accepted = [None] * len(self.labels) if accepted is None else list(accepted)
        if len(accepted) != len(self.labels):
            raise DataError(f"{len(accepted)} accepted-prediction masks for {len(self.labels)} label images")
        self.accepted: list[np.ndarray | None] = [self._check_accepted(i, a) for i, a in enumerate(accepted)]
        self._preview: np.ndarray | None = None

    def _check_labels(self, index: int, label) -> np.ndarray:
        label = np.asarray(label)
        image = self.images[index] if index < len(self.images) else None
        if image is not None and label.shape != image.shape[1:]:
            raise DataError(f"item {index}: labels {label.shape} do not match the image {image.shape[1:]}")
        if not np.issubdtype(label.dtype, np.integer):
            raise DataError(f"item {index}: labels must be integers, got {label.dtype}")
        if label.size and (label.min() < 0 or label.max() > self.n_classes):
            raise DataError(f"item {index}: label values must be 0..{self.n_classes}")
        return np.ascontiguousarray(label, dtype=np.int64)

    def _check_accepted(self, index: int, accepted) -> np.ndarray | None:
        if accepted is None:
            return None
        accepted = np.asarray(accepted, dtype=bool)
        if accepted.shape != self.labels[index].shape:
            raise DataError(f"item {index}: accepted-prediction mask {accepted.shape} does not match the labels "
                            f"{self.labels[index].shape}")
        return np.ascontiguousarray(accepted) if accepted.any() else None

    def __len__(self) -> int:
        return len(self.images)

    @property
    def version(self) -> int:
        """Incremented by every :meth:`update_labels` (the trainer refreshes its caches on change)."""
        return self._version

    def update_labels(self, index: int, labels, accepted=None) -> None:
        """Replace the labels of item ``index`` and its accepted-prediction mask (None: none) (thread-safe)."""
        checked = self._check_labels(index, labels)
        mask = None if accepted is None else np.asarray(accepted, dtype=bool)
        if mask is not None and mask.shape != checked.shape:
            raise DataError(f"item {index}: accepted-prediction mask {mask.shape} does not match the labels "
                            f"{checked.shape}")
        with self._lock:
            self.labels[index] = checked
            self.accepted[index] = None if mask is None or not mask.any() else np.ascontiguousarray(mask)
            self._version += 1

    def set_preview_image(self, image) -> None:
        """Set the (C, Y, X) image whose softmax the trainer yields as a preview, or None (thread-safe)."""
        if image is not None:
            image = np.asarray(image, dtype=np.float32)
            if image.ndim == 2:
                image = image[None]
            image = np.ascontiguousarray(image)
        with self._lock:
            self._preview = image

    @property
    def preview_image(self) -> np.ndarray | None:
        with self._lock:
            return self._preview

    def snapshot(self) -> tuple[list[np.ndarray], int]:
        """The current label images (the list is a copy; arrays are replaced, never mutated) and version."""
        with self._lock:
            return list(self.labels), self._version

    def evidence_snapshot(self) -> tuple[list[np.ndarray], list[np.ndarray], int]:
        """(labels, evidence, version): the current labels, and the same with every accepted-prediction
        pixel set to 0 (what a person painted: the only labels a model may be validated on)."""
        with self._lock:
            labels, accepted, version = list(self.labels), list(self.accepted), self._version
        evidence = [lab if mask is None else np.where(mask, 0, lab) for lab, mask in zip(labels, accepted)]
        return labels, evidence, version

    def class_counts(self, labels: list[np.ndarray] | None = None) -> np.ndarray:
        """Labelled pixels per class, shape (K,)."""
        labels = self.snapshot()[0] if labels is None else labels
        counts = np.zeros(self.n_classes + 1, np.int64)
        for label in labels:
            counts += np.bincount(label.ravel(), minlength=self.n_classes + 1)[: self.n_classes + 1]
        return counts[1:]


# --------------------------------------------------------------------------------------------------
# Sampling


class PatchSampler:
    """Random crops of side ``crop`` around centres biased toward annotated pixels.

    Each image is padded once by mirroring (the paper's overlap-tile idea), so crops near the border
    are plain slices. With probability ``labelled_bias`` a centre is an annotated pixel of a class
    drawn uniformly among the classes present; otherwise a uniform position in an image drawn in
    proportion to its area.
    """

    def __init__(self, images, labels, weights, crop: int, labelled_bias: float, rng: np.random.Generator,
                 n_classes: int) -> None:
        self.crop = int(crop)
        self.rng = rng
        self.bias = float(labelled_bias)
        self.n_classes = n_classes
        self.half = self.crop // 2
        self.images = [self._pad(im, "reflect") for im in images]
        self.set_weights(weights)
        self.set_labels(labels)

    def set_weights(self, weights: list[np.ndarray] | None) -> None:
        """Per-image (Y, X) border weight maps, or None."""
        self.weights = None if weights is None else [self._pad(w[None], "reflect")[0] for w in weights]

    def _pad(self, array: np.ndarray, mode: str) -> np.ndarray:
        pad = self.half + 1
        widths = [(0, 0)] * (array.ndim - 2) + [(pad, pad), (pad, pad)]
        if mode == "reflect" and min(array.shape[-2:]) < 2:
            mode = "edge"
        return np.ascontiguousarray(np.pad(array, widths, mode=mode))

    def set_labels(self, labels: list[np.ndarray]) -> None:
        # Labels are mirrored like the images, so mirrored context stays correctly labelled.
        self.labels = [self._pad(lab, "reflect") for lab in labels]
        self.shapes = [lab.shape for lab in labels]
        areas = np.array([s[0] * s[1] for s in self.shapes], np.float64)
        self.area_p = areas / areas.sum()
        # Per class: flat indices (into the unpadded image) of annotated pixels, per image.
        self.class_pixels: list[list[np.ndarray]] = []
        self.class_p: list[np.ndarray] = []
        for k in range(1, self.n_classes + 1):
            per_image = [np.flatnonzero(lab.ravel() == k) for lab in labels]
            counts = np.array([len(p) for p in per_image], np.float64)
            self.class_pixels.append(per_image)
            self.class_p.append(counts / counts.sum() if counts.sum() else counts)
        self.present = [k for k in range(self.n_classes) if self.class_p[k].sum() > 0]

    def centres(self, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Image index, row and column of ``batch`` patch centres (unpadded coordinates)."""
        rng = self.rng
        index = np.empty(batch, np.int64)
        rows = np.empty(batch, np.int64)
        cols = np.empty(batch, np.int64)
        biased = rng.random(batch) < self.bias if self.present else np.zeros(batch, bool)
        for b in range(batch):  # batch-sized loop of O(1) draws, not per pixel
            if biased[b]:
                k = self.present[rng.integers(len(self.present))]
                i = rng.choice(len(self.shapes), p=self.class_p[k])
                pixels = self.class_pixels[k][i]
                flat = pixels[rng.integers(len(pixels))]
                r, c = divmod(int(flat), self.shapes[i][1])
                # Jitter so the annotated pixel is not always at the centre of the patch.
                jitter = self.half // 2
                r += int(rng.integers(-jitter, jitter + 1))
                c += int(rng.integers(-jitter, jitter + 1))
            else:
                i = rng.choice(len(self.shapes), p=self.area_p)
                r = int(rng.integers(self.shapes[i][0]))
                c = int(rng.integers(self.shapes[i][1]))
            h, w = self.shapes[i]
            index[b], rows[b], cols[b] = i, min(max(r, 0), h - 1), min(max(c, 0), w - 1)
        return index, rows, cols

    def sample(self, batch: int) -> PatchBatch:
        """``batch`` crops of side ``crop`` (padded coordinates: crop centred on each centre)."""
        index, rows, cols = self.centres(batch)
        channels = self.images[0].shape[0]
        images = np.empty((batch, channels, self.crop, self.crop), np.float32)
        labels = np.empty((batch, self.crop, self.crop), np.int64)
        weights = None if self.weights is None else np.empty((batch, self.crop, self.crop), np.float32)
        pad = self.half + 1
        for b in range(batch):
            i = index[b]
            top = rows[b] + pad - self.half
            left = cols[b] + pad - self.half
            # The mirror padding (half a crop on each side) keeps every crop inside the padded image.
            window = np.s_[top : top + self.crop, left : left + self.crop]
            images[b] = self.images[i][(slice(None),) + window]
            labels[b] = self.labels[i][window]
            if weights is not None:
                weights[b] = self.weights[i][window]
        return PatchBatch(images, labels, weights)


# --------------------------------------------------------------------------------------------------
# Validation split


@dataclass
class Split:
    """Which parts of the labels are for validation: whole images, or tiles of images."""

    held_out: set[int]  # images whose labels are all for validation
    val_items: list[tuple[int, tuple[slice, slice]]]  # (image index, window) scored at validation

    def train_labels(self, labels: list[np.ndarray], evidence: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """The labels with every validation part set to 0 (unlabelled).

        With ``evidence`` (the labels a person painted, see :meth:`TrainingSet.evidence_snapshot`) only
        those are taken out: accepted-prediction pixels of validation parts are still trained on.
        """
        out = list(labels)
        for i in self.held_out:
            out[i] = np.zeros_like(labels[i]) if evidence is None else np.where(evidence[i] > 0, 0, labels[i])
        for i, window in self.val_items:
            if i not in self.held_out:
                masked = out[i].copy()
                if evidence is None:
                    masked[window] = 0
                else:
                    masked[window][evidence[i][window] > 0] = 0
                out[i] = masked
        return out


def split_validation(labels: list[np.ndarray], val_fraction: float, rng: np.random.Generator,
                     tile: int = 256, max_val_tiles: int = 32) -> Split:
    """Hold out a fraction of the annotated images, or of annotated tiles when there is one image.

    Whole images are held out when at least two images carry labels (one at least stays for
    training); otherwise the annotated tiles of side ``tile`` are split. Validation regions are
    unlabelled in the training labels (:meth:`Split.train_labels`), so no annotated pixel is used
    for both.

    ``labels`` are the labels a validation may use: pass the evidence of
    :meth:`TrainingSet.evidence_snapshot` (accepted-prediction pixels removed), so that an image or a
    tile that only holds accepted predictions is never chosen for validation.
    """
    if val_fraction <= 0:
        return Split(set(), [])
    annotated = [i for i, lab in enumerate(labels) if lab.any()]
    val_items: list[tuple[int, tuple[slice, slice]]] = []
    held_out: set[int] = set()
    if len(annotated) >= 2:
        n_val = min(len(annotated) - 1, max(1, int(val_fraction * len(annotated))))  # floor: keep training data
        held_out = set(rng.choice(annotated, size=n_val, replace=False).tolist())
        for i in sorted(held_out):
            val_items.extend((i, w) for w in _tiles(*labels[i].shape, 512) if labels[i][w].any())
    else:
        tiles = [(i, window) for i in annotated for window in _tiles(*labels[i].shape, tile)
                 if labels[i][window].any()]
        if len(tiles) < 2:
            log.info("too few annotated tiles for a validation split; training without validation")
            return Split(set(), [])
        n_val = min(len(tiles) - 1, max(1, int(round(val_fraction * len(tiles)))))
        val_items = [tiles[p] for p in sorted(rng.choice(len(tiles), size=n_val, replace=False).tolist())]
    if len(val_items) > max_val_tiles:
        keep = np.sort(rng.choice(len(val_items), size=max_val_tiles, replace=False))
        val_items = [val_items[k] for k in keep]
    return Split(held_out, val_items)


def _tiles(h: int, w: int, tile: int) -> list[tuple[slice, slice]]:
    ny, nx = max(1, math.ceil(h / tile)), max(1, math.ceil(w / tile))
    ys = np.linspace(0, h, ny + 1).round().astype(int)
    xs = np.linspace(0, w, nx + 1).round().astype(int)
    return [np.s_[ys[a] : ys[a + 1], xs[b] : xs[b + 1]] for a in range(ny) for b in range(nx)]
