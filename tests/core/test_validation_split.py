"""Validation honesty (issue 17, item 2): accepted predictions are never validated on, a score says what it
was computed on, and too few held-out labels give no score (the latest model is kept) instead of F1 1.000."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from unet_studio.core.config import ModelConfig, TrainConfig
from unet_studio.core.labels import LabelVolume
from unet_studio.core.train import TrainingSet, TrainProgress, train
from unet_studio.core.train.data import split_validation
from unet_studio.core.train.validation import Validator

TINY = ModelConfig(base_channels=4, depth=2, norm="batch")


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def _config(**changes) -> TrainConfig:
    base = dict(patch_size=32, batch_size=2, epochs=1, steps_per_epoch=6, eval_every=3, preview_every=0,
                val_fraction=0.25, seed=0, device="cpu", warmup_steps=1, num_threads=1, augment=False, amp=False)
    base.update(changes)
    return TrainConfig(**base)


# ------------------------------------------------------------------ provenance of accepted predictions

def test_accepted_pixels_are_flagged_until_painted_over_and_undo_restores_the_flags():
    volume = LabelVolume(shape=(2, 40, 40))
    volume.paint_line(0, (5, 5), (5, 30), 2, 1)  # a person's stroke
    person = volume.data[0].copy()
    prediction = np.where(np.arange(40)[None, :] < 20, 1, 2).repeat(40, 0)
    volume.begin_stroke(0)
    volume.set_region(0, (0, 40, 0, 40), prediction, accepted=True)
    volume.end_stroke()
    flags = volume.accepted_slice(0)
    # Flagged: what the prediction changed; the stroke it agreed with (class 1, x < 20) stays the person's.
    assert flags is not None and flags[20, 10] and flags[20, 30]
    assert not flags[5, 10] and flags[5, 25]  # x=25 was 1, the prediction made it 2
    assert volume.accepted_slice(1) is None
    # Painting over accepted pixels, even with the same class, makes them the person's.
    volume.paint_line(0, (30, 5), (30, 35), 1.5, 2)
    assert not volume.accepted[0, 30, 30] and not volume.accepted[0, 30, 10]
    assert volume.accepted[0, 25, 30]
    volume.undo()
    assert volume.accepted[0, 30, 30] and volume.accepted[0, 30, 10]
    volume.redo()
    assert not volume.accepted[0, 30, 30]
    volume.fill(0, 20, 35, 1)  # a fill is a person's edit too
    assert not volume.accepted[0, 20, 35]
    volume.undo()
    volume.undo()
    volume.undo()  # the accept itself: back to the person's stroke, nothing flagged
    np.testing.assert_array_equal(volume.data[0], person)
    assert volume.accepted_slice(0) is None


def test_evidence_leaves_out_accepted_pixels():
    labels = np.full((8, 8), 2, np.int64)
    accepted = np.ones((8, 8), bool)
    accepted[0, :] = False
    dataset = TrainingSet([np.zeros((1, 8, 8), np.float32)], [labels], 2, accepted=[accepted])
    all_labels, evidence, _ = dataset.evidence_snapshot()
    assert (all_labels[0] == 2).all()
    assert (evidence[0][0] == 2).all() and not evidence[0][1:].any()
    dataset.update_labels(0, labels, None)  # no flags any more: all of it is evidence
    assert (dataset.evidence_snapshot()[1][0] == 2).all()


def test_the_split_validates_on_painted_pixels_and_trains_on_accepted_ones_everywhere():
    labels = np.where(np.arange(512)[None, :] < 256, 1, 2).repeat(512, 0).astype(np.int64)  # accepted
    evidence = np.zeros_like(labels)
    evidence[10:20, 10:500] = labels[10:20, 10:500]  # a person's strokes, in the top row of tiles only
    evidence[300:310, 10:500] = labels[300:310, 10:500]
    split = split_validation([evidence], 0.5, np.random.default_rng(0), tile=128)
    assert split.val_items
    for _, (rows, cols) in split.val_items:
        assert evidence[rows, cols].any()  # never a tile of accepted predictions only
    train_labels = split.train_labels([labels], [evidence])[0]
    for _, window in split.val_items:
        assert not (train_labels[window] & (evidence[window] > 0)).any()  # painted validation pixels held out
        accepted_there = evidence[window] == 0
        np.testing.assert_array_equal(train_labels[window][accepted_there], labels[window][accepted_there])


# ------------------------------------------------------------------ enough held-out labels

def _blobs(size: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows, cols = np.indices((size, size))
    mask = (rows - size // 2) ** 2 + (cols - size // 2) ** 2 < (size // 4) ** 2
    image = (mask * 0.8 + rng.normal(0, 0.1, mask.shape)).astype(np.float32)[None]
    return image, np.where(mask, 2, 1).astype(np.int64)


def test_a_class_missing_from_the_held_out_labels_gives_no_score():
    _, labels = _blobs()
    only_background = np.where(labels == 1, 1, 0)
    image = np.zeros((1, 64, 64), np.float32)
    dataset = TrainingSet([image], [only_background], 2)
    validator = Validator(dataset, [(0, np.s_[0:64, 0:64])], [only_background], torch.device("cpu"))
    reason = validator.shortfall(2, 100)
    assert reason is not None and "class 2: 0 px" in reason
    assert validator.describe()["pixels"] == int((only_background > 0).sum())
    assert validator.describe()["items"] == [0]
    full = Validator(dataset, [(0, np.s_[0:64, 0:64])], [labels], torch.device("cpu"))
    assert full.shortfall(2, 100) is None
    assert "class 2" in full.shortfall(2, 10_000)


def test_training_on_accepted_predictions_never_validates_on_them(tmp_path):
    images, labels, accepted = [], [], []
    for seed in range(3):
        image, label = _blobs(seed=seed)
        images.append(image)
        labels.append(label)
        accepted.append(np.ones_like(label, bool))  # every pixel came from "Accept prediction"
    accepted[0][:, :4] = False  # the person painted a thin background band of one image
    dataset = TrainingSet(images, labels, 2, accepted=accepted)
    reports = list(train(dataset, TINY, _config(val_fraction=0.5), out_dir=tmp_path / "m"))
    evaluations = [r for r in reports if r.val is not None and not r.done]
    assert evaluations
    for report in evaluations:
        assert report.val["enough"] is False and report.val["mean_f1"] is None
        assert "held out" in report.val["reason"]
        assert report.is_best  # no score: the latest model is the one kept
    assert reports[-1].best_score is None and reports[-1].model_dir == tmp_path / "m"


def test_a_score_says_what_it_was_computed_on():
    images, labels = zip(*(_blobs(seed=seed) for seed in range(4)))
    dataset = TrainingSet(list(images), list(labels), 2)
    reports = list(train(dataset, TINY, _config()))
    report = next(r for r in reports if r.val is not None)
    assert report.val["enough"] is True and report.val["mean_f1"] is not None
    assert report.val["pixels"] == 64 * 64 and len(report.val["items"]) == 1  # one held-out image
    assert sum(report.val["class_pixels"]) == report.val["pixels"]


def test_too_few_held_out_pixels_give_no_score_and_no_best():
    images, labels = zip(*(_blobs(seed=seed) for seed in range(4)))
    dataset = TrainingSet(list(images), list(labels), 2)
    reports = list(train(dataset, TINY, _config(min_val_pixels_per_class=5000)))
    evaluations = [r for r in reports if r.val is not None]
    assert evaluations and all(r.val["enough"] is False for r in evaluations)
    assert "each class needs 5,000" in evaluations[0].val["reason"]
    assert all(r.best_score is None for r in reports)


# ------------------------------------------------------------------ progress under a time limit

def _progress(**changes) -> TrainProgress:
    base = dict(step=100, total_steps=2500, epoch=1, loss=0.5, lr=1e-3, samples_per_s=1.0, elapsed_s=30.0,
                eta_s=None, time_limit_s=300.0)
    base.update(changes)
    return TrainProgress(**base)


def test_progress_follows_time_when_the_time_limit_ends_the_run():
    slow = _progress()  # 100 steps in 30 s: 1000 steps by 300 s, fewer than 2500
    assert slow.time_bound() and slow.fraction_done() == pytest.approx(0.1)
    fast = _progress(step=2000)  # 2000 steps in 30 s: the steps end first
    assert not fast.time_bound() and fast.fraction_done() == pytest.approx(0.8)
    assert not _progress(time_limit_s=None).time_bound()
    assert _progress(done=True, stop_reason="time limit reached").time_bound()
