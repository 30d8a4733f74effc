"""The training generator: learning, reproducibility, stopping, resuming, NaN, previews, early stopping."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from unet_studio.core.train import loop as training
from unet_studio.core.model.checkpoint import load_model
from unet_studio.core.config import ModelConfig, TrainConfig
from unet_studio.core.train.data import TrainingSet
from unet_studio.core.errors import ConfigError, DataError, TrainingError
from unet_studio.core.presets import preset_configs
from unet_studio.core.train.loop import TrainProgress, train
from unet_studio.core.train.validation import Validator, calibrate_thresholds, scores_from_confusion

TINY = ModelConfig(base_channels=4, depth=3, norm="batch")


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def _config(**changes) -> TrainConfig:
    # One thread: tiny models gain nothing from more, and stay fast on a busy shared machine.
    base = dict(patch_size=32, batch_size=4, epochs=1, steps_per_epoch=12, eval_every=4, preview_every=4,
                val_fraction=0.25, seed=0, device="cpu", learning_rate=3e-3, warmup_steps=2, num_threads=1)
    base.update(changes)
    return TrainConfig(**base)


def _dataset(n: int = 4, size: int = 48, sparse: bool = False, seed: int = 0) -> TrainingSet:
    """Bright blobs on a dark noisy background; class 2 = blob. Sparse: only a few strokes labelled."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    rows, cols = np.indices((size, size))
    for _ in range(n):
        mask = np.zeros((size, size), bool)
        for _ in range(4):
            r, c = rng.integers(6, size - 6, 2)
            mask |= (rows - r) ** 2 + (cols - c) ** 2 < rng.integers(9, 40)
        image = (mask * 0.8 + rng.normal(0, 0.15, mask.shape)).astype(np.float32)
        label = np.where(mask, 2, 1).astype(np.int64)
        if sparse:
            keep = np.zeros_like(mask)
            keep[::7, :] = True
            label = np.where(keep, label, 0)
        images.append(image[None])
        labels.append(label)
    return TrainingSet(images, labels, 2)


def _run(dataset, config, out_dir=None, model_config=TINY, **kwargs) -> list[TrainProgress]:
    return list(train(dataset, model_config, config, out_dir=out_dir, **kwargs))


def test_training_learns_and_writes_a_self_describing_model(tmp_path):
    dataset = _dataset()
    reports = _run(dataset, _config(steps_per_epoch=60, eval_every=15, learning_rate=1e-2), tmp_path / "m",
                   class_values=[0, 255], class_names=["background", "blob"])
    final = reports[-1]
    assert final.done and final.stop_reason == "finished" and final.model_dir == tmp_path / "m"
    assert [r.step for r in reports[:-1]] == list(range(1, 61))
    vals = [r.val for r in reports if r.val is not None]
    assert len(vals) == 4 and len(vals[-1]["f1"]) == 2 and len(vals[-1]["iou"]) == 2
    assert final.best_score > 0.85, vals  # an easy task: bright blobs
    assert reports[-2].loss < reports[0].loss
    assert all(r.samples_per_s >= 0 and r.elapsed_s >= 0 for r in reports)
    model, info = load_model(tmp_path / "m")
    assert info.class_values == [0, 255] and info.class_names == ["background", "blob"]
    assert info.best_score == pytest.approx(final.best_score)
    assert len(info.history) == 4 and info.history[-1]["step"] == 60
    assert info.train_config["patch_size"] == 32 and info.model_config.base_channels == 4


def test_sparse_strokes_train_on_strokes_only():
    dataset = _dataset(sparse=True)
    # The held-out rows hold a few dozen blob pixels: let them count for this test of learning.
    reports = _run(dataset, _config(steps_per_epoch=40, eval_every=20, min_val_pixels_per_class=10))
    assert reports[-1].best_score > 0.8


def test_two_runs_with_one_seed_give_the_same_weights(tmp_path):
    config = _config(steps_per_epoch=6, eval_every=3)
    _run(_dataset(), config, tmp_path / "a")
    _run(_dataset(), config, tmp_path / "b")
    _run(_dataset(), config.replace(seed=1), tmp_path / "c")
    a, b, c = (load_model(tmp_path / name)[0].state_dict() for name in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_stopping_the_generator_mid_run_leaves_a_loadable_model(tmp_path):
    run = train(_dataset(), TINY, _config(steps_per_epoch=1000, eval_every=500), out_dir=tmp_path / "m")
    for progress in run:
        if progress.step == 3:
            break
    run.close()
    model, info = load_model(tmp_path / "m")
    assert info.extra["stop_reason"] == "stopped" and info.extra["steps"] == 3
    assert all(torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point())


def test_resuming_continues_the_history(tmp_path):
    dataset = _dataset()
    _run(dataset, _config(steps_per_epoch=8, eval_every=4), tmp_path / "m")
    first = json.loads((tmp_path / "m" / "model.json").read_text())["history"]
    assert [h["step"] for h in first] == [4, 8]
    reports = _run(dataset, _config(steps_per_epoch=8, eval_every=4), tmp_path / "m2", init_from=tmp_path / "m")
    model, info = load_model(tmp_path / "m2")
    assert [h["step"] for h in info.history] == [4, 8, 12, 16]
    assert info.history[:2] == first
    assert info.extra["steps"] == 16 and info.extra["resumed_from"] == str(tmp_path / "m")
    # The resumed run starts from the saved weights: its first loss is well below a fresh start's.
    fresh = _run(dataset, _config(steps_per_epoch=1, eval_every=1))
    assert reports[0].loss < fresh[0].loss


def test_resuming_a_model_of_other_classes_is_refused(tmp_path):
    _run(_dataset(), _config(steps_per_epoch=4), tmp_path / "m")
    images = [np.zeros((1, 32, 32), np.float32)] * 2
    labels = [np.arange(32 * 32).reshape(32, 32) % 3 + 1] * 2
    with pytest.raises(DataError, match="classes"):
        _run(TrainingSet(images, labels, 3), _config(steps_per_epoch=4), init_from=tmp_path / "m")


def test_nan_loss_stops_with_a_reason_and_keeps_the_last_good_model(tmp_path, monkeypatch):
    real_loss = training.segmentation_loss
    calls = {"n": 0}

    def failing_loss(logits, *args, **kwargs):
        calls["n"] += logits.requires_grad  # training steps only, not validation
        loss = real_loss(logits, *args, **kwargs)
        return loss * float("nan") if calls["n"] >= 6 else loss

    monkeypatch.setattr(training, "segmentation_loss", failing_loss)
    reports = _run(_dataset(), _config(steps_per_epoch=50, eval_every=4), tmp_path / "m")
    final = reports[-1]
    assert final.done and "loss became nan" in final.stop_reason and final.step == 6
    model, info = load_model(tmp_path / "m")
    assert info.history[-1]["step"] == 4  # the model of the last evaluation before the NaN
    assert all(torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point())


def test_early_stopping_when_validation_stops_improving():
    frozen = ModelConfig(base_channels=4, depth=3, norm="none")  # lr 0: scores never change
    reports = _run(_dataset(), _config(steps_per_epoch=100, eval_every=2, patience=3, learning_rate=0.0),
                   model_config=frozen)
    assert reports[-1].stop_reason.startswith("early stopping")
    assert reports[-1].step == 8  # best at the first evaluation, then 3 without improvement


def test_time_limit_stops_the_run():
    reports = _run(_dataset(), _config(steps_per_epoch=10_000, eval_every=1000, time_limit_s=1.5))
    assert reports[-1].stop_reason == "time limit reached" and reports[-1].step < 10_000
    assert len(reports) >= 4
    assert reports[-2].lr < 0.5 * max(r.lr for r in reports)  # the schedule decays over the time limit


def test_preview_is_the_softmax_of_the_preview_image_and_labels_may_change_while_training():
    dataset = _dataset()
    dataset.set_preview_image(dataset.images[0][0, :40, :36])
    previews = []
    for progress in train(dataset, TINY, _config(steps_per_epoch=8, preview_every=3)):
        if progress.preview is not None:
            previews.append(progress.preview)
        if progress.step == 4:
            dataset.update_labels(1, np.where(dataset.labels[1] == 2, 2, 0))  # a person erases labels
    assert len(previews) == 2
    assert previews[0].shape == (2, 40, 36) and previews[0].dtype == np.float32
    np.testing.assert_allclose(previews[0].sum(0), 1.0, atol=1e-4)


def test_valid_padding_models_train():
    config = ModelConfig(base_channels=4, depth=2, padding="valid")
    reports = _run(_dataset(size=64), _config(patch_size=44, steps_per_epoch=4), model_config=config)
    assert reports[-1].done and np.isfinite(reports[-2].loss)


def test_scores_from_confusion():
    scores = scores_from_confusion(np.array([[8, 2, 0], [1, 9, 0], [0, 0, 0]]))
    assert scores["iou"][0] == pytest.approx(8 / 11) and scores["f1"][1] == pytest.approx(18 / 21)
    assert scores["iou"][2] is None and scores["mean_f1"] == pytest.approx((16 / 19 + 18 / 21) / 2)


@pytest.mark.parametrize("name", ["fast", "classic"])
def test_presets(name):
    model_config, train_config = preset_configs(name, in_channels=2, n_classes=3)
    assert model_config.in_channels == 2 and model_config.n_classes == 3
    assert training.admissible_patch(train_config.patch_size, model_config) == train_config.patch_size


def _scores_at(probs, truth, t):
    pred = np.where(probs[0] >= t, 0, 1)
    return scores_from_confusion(np.bincount(truth * 2 + pred, minlength=4).reshape(2, 2))["mean_f1"]


def test_calibrated_threshold_recovers_a_shifted_decision_boundary():
    rng = np.random.default_rng(0)
    truth = (rng.random(20000) > 0.25).astype(np.int64)  # class 0 is the rare one (25%)
    # An under-confident rare class: its probability is shifted down, so argmax misses much of it.
    evidence = np.where(truth == 0, rng.normal(0.45, 0.12, truth.size), rng.normal(0.15, 0.12, truth.size))
    p0 = np.clip(evidence, 0, 1)
    probs = np.stack([p0, 1 - p0])
    thresholds = calibrate_thresholds(probs, truth)
    assert len(thresholds) == 2 and thresholds[1] == 0.0
    assert 0.25 <= thresholds[0] <= 0.35  # the boundary between the two normal modes is 0.30
    assert _scores_at(probs, truth, thresholds[0]) > _scores_at(probs, truth, 0.5) + 0.05


def test_well_calibrated_or_separable_probabilities_keep_argmax():
    rng = np.random.default_rng(1)
    truth = (rng.random(5000) > 0.3).astype(np.int64)
    separable = np.where(truth == 0, 0.95, 0.05)  # scribble-like: every threshold in 0.05..0.95 is perfect
    assert calibrate_thresholds(np.stack([separable, 1 - separable]), truth) == []
    balanced = np.arange(5000) % 2
    evidence = np.where(balanced == 0, rng.normal(0.7, 0.1, truth.size), rng.normal(0.3, 0.1, truth.size))
    p0 = np.clip(evidence, 0, 1)  # balanced, symmetric around 0.5: argmax is already the best rule
    chosen = calibrate_thresholds(np.stack([p0, 1 - p0]), balanced)
    assert chosen == [] or abs(max(chosen) - 0.5) <= 0.02
    assert calibrate_thresholds(np.stack([p0, 1 - p0]), np.zeros_like(truth)) == []  # one class only


def test_training_saves_thresholds_chosen_on_its_validation_data(tmp_path):
    seen = {}

    def spy(probs, truth):
        seen["n"] = truth.size
        return [0.0, 0.42]

    reports = _run(_dataset(), _config(calibration_min_pixels=1000), tmp_path / "m", calibrator=spy)
    _, info = load_model(tmp_path / "m")
    assert info.thresholds == [0.0, 0.42] and reports[-1].done
    assert seen["n"] == 48 * 48  # the labelled pixels of the one held-out image


def test_no_thresholds_are_chosen_on_sparse_scribbles_or_little_validation(tmp_path):
    called = []

    def calibrator(probs, truth):
        called.append(1)
        return [0.0, 0.42]

    _run(_dataset(), _config(), tmp_path / "small", calibrator=calibrator)  # 48 x 48 validation pixels: too few
    assert load_model(tmp_path / "small")[1].thresholds == [] and not called
    _run(_dataset(sparse=True), _config(calibration_min_pixels=100), tmp_path / "m", calibrator=calibrator)
    _, info = load_model(tmp_path / "m")
    assert info.thresholds == [] and not called


def test_a_failing_calibrator_never_loses_the_model(tmp_path):
    def broken(probs, truth):
        raise RuntimeError("a bug in the calibrator")

    reports = _run(_dataset(), _config(calibration_min_pixels=1000), tmp_path / "m", calibrator=broken)
    assert reports[-1].done and load_model(tmp_path / "m")[1].thresholds == []


def test_a_time_limit_reached_before_the_first_step_stops_cleanly(tmp_path):
    """Issue 13, case 16: with no step run, the final report still has a learning rate (no UnboundLocalError)."""
    reports = _run(_dataset(), _config(time_limit_s=1e-300), tmp_path / "m")
    assert len(reports) == 1 and reports[0].done and reports[0].step == 0
    assert reports[0].stop_reason == "time limit reached" and reports[0].lr > 0


@pytest.mark.parametrize("changes, message", [
    ({"time_limit_s": float("nan")}, "time_limit_s must be a finite number"),
    ({"seed": -1}, "seed must be between 0 and 4294967295"),
    ({"seed": 1e23}, "seed must be a whole number"),
    ({"learning_rate": float("inf")}, "learning_rate must be a finite number"),
])
def test_train_config_refuses_numbers_it_cannot_use(changes, message):
    with pytest.raises(ConfigError, match=message):
        _config(**changes)


def _failing_above(monkeypatch, limit, error=None):
    """Make the network's forward pass run out of memory for batches larger than ``limit``."""
    from unet_studio.core.model.unet import UNet

    forward, sizes = UNet.forward, []

    def limited(self, x):
        if self.training:
            sizes.append(x.shape[0])
            if x.shape[0] > limit:
                raise error or torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(self, x)

    monkeypatch.setattr(UNet, "forward", limited)
    return sizes


def test_out_of_memory_halves_the_batch_and_training_goes_on(tmp_path, monkeypatch, caplog):
    sizes = _failing_above(monkeypatch, 2)
    reports = _run(_dataset(), _config(batch_size=8), tmp_path / "m")
    assert sizes[:3] == [8, 4, 2] and set(sizes[3:]) == {2}
    final = reports[-1]
    assert final.done and final.stop_reason == "finished" and final.step == 12
    assert final.batch_size == 2 and "going on with 2" in final.notice
    assert "out of memory with 4 patches per step" in caplog.text
    _, info = load_model(tmp_path / "m")
    assert info.extra["batch_size"] == 2


def test_out_of_memory_with_one_patch_says_what_to_do(tmp_path, monkeypatch):
    _failing_above(monkeypatch, 0, RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried 9 GB"))
    with pytest.raises(TrainingError, match="even with one 32x32 patch per step; close other programs"):
        _run(_dataset(), _config(batch_size=2), tmp_path / "m")


def test_other_errors_inside_a_step_are_not_swallowed(tmp_path, monkeypatch):
    _failing_above(monkeypatch, 0, ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        _run(_dataset(), _config(batch_size=2), tmp_path / "m")


@pytest.mark.parametrize("sparse, expected", [(False, [True, True, False, False, False]),
                                              (True, [True, True, True, True, False])])
def test_ties_on_sparse_validation_keep_the_later_model(monkeypatch, sparse, expected):
    scores = iter([0.90, 0.97, 0.968, 0.969, 0.95])

    def evaluate(self, model, n_classes, class_weights, autocast):
        score = next(scores)
        return {"mean_f1": score, "mean_iou": score, "f1": [score] * 2, "iou": [score] * 2, "loss": 0.1}

    monkeypatch.setattr(Validator, "evaluate", evaluate)
    reports = _run(_dataset(sparse=sparse), _config(steps_per_epoch=10, eval_every=2, patience=100,
                                                    min_val_pixels_per_class=10))
    evaluated = [r for r in reports if r.val is not None and not r.done]
    assert [r.is_best for r in evaluated] == expected
    assert evaluated[-1].best_score == 0.97  # the reported best score is still the highest one


def test_the_last_part_of_the_run_trains_without_flips_and_90_degree_rotations(monkeypatch):
    seen = []
    augment = training.aug.augment_batch

    def recording(images, labels, weights, patch, params, generator):
        seen.append(params.flips)
        return augment(images, labels, weights, patch, params, generator)

    monkeypatch.setattr(training.aug, "augment_batch", recording)
    _run(_dataset(), _config(steps_per_epoch=12, orientation_until=0.75))
    assert seen == [True] * 9 + [False] * 3  # steps 1-9 (progress 0 .. 8/12), then 10-12
    seen.clear()
    _run(_dataset(), _config(steps_per_epoch=12))  # the default: all the way
    assert seen == [True] * 12


def test_the_kept_model_comes_from_the_upright_part_of_the_run(monkeypatch, tmp_path):
    # Validation scores that fall: without the reset the model of step 2 would be kept.
    scores = iter([0.95, 0.94, 0.93, 0.80, 0.85, 0.847])

    def evaluate(self, model, n_classes, class_weights, autocast):
        score = next(scores)
        return {"mean_f1": score, "mean_iou": score, "f1": [score] * 2, "iou": [score] * 2, "loss": 0.1}

    monkeypatch.setattr(Validator, "evaluate", evaluate)
    reports = _run(_dataset(), _config(steps_per_epoch=12, eval_every=2, patience=100, orientation_until=0.5),
                   tmp_path / "m")
    evaluated = [r for r in reports if r.val is not None and not r.done]
    # Steps 2, 4, 6 before the upright part (from progress 6/12, step 7 on); 8, 10, 12 in it.
    assert [r.step for r in evaluated] == [2, 4, 6, 8, 10, 12]
    # In the upright part scores within 0.005 of the best are ties, and the later model is kept.
    assert [r.is_best for r in evaluated] == [True, False, False, True, True, True]
    assert evaluated[-1].best_score == 0.85
    assert load_model(tmp_path / "m", "cpu")[1].best_score == 0.85


def test_orientation_until_must_be_a_fraction():
    with pytest.raises(ConfigError, match="orientation_until"):
        TrainConfig(orientation_until=1.5)
