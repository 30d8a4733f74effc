"""The moving average of the weights (``TrainConfig.weight_average``): the arithmetic of one update, and
what a run on the bundled sample saves with it (the average, not the latest weights)."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
from skimage.filters import threshold_otsu

from unet_studio.core.config import ModelConfig, TrainConfig
from unet_studio.core.errors import ConfigError
from unet_studio.core.model import UNet, load_model
from unet_studio.core.train import loop
from unet_studio.core.train.averaging import WeightAverage
from unet_studio.core.train.data import TrainingSet
from unet_studio.resources import sample_image_path

pytestmark = pytest.mark.usefixtures("restore_torch_threads")

TINY = ModelConfig(base_channels=4, depth=2, norm="batch")


def _sample() -> TrainingSet:
    image = tifffile.imread(sample_image_path())[0].astype(np.float32)
    image = (image - image.min()) / (image.max() - image.min())
    labels = np.where(image > threshold_otsu(image), 2, 1).astype(np.int64)
    return TrainingSet([image[None]], [labels], 2)


def test_one_update_moves_the_average_by_one_minus_the_decay_and_copies_counters():
    model = UNet.from_config(TINY)
    average = WeightAverage(model, 0.99)
    before = {k: v.clone() for k, v in average.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
        bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
        bn.running_mean.add_(2.0)
        bn.num_batches_tracked.add_(5)
    average.update(model)
    keep = 2 / 11  # the first update's decay: (1 + 1) / (10 + 1), below 0.99
    after, current = average.module.state_dict(), model.state_dict()
    for name, value in after.items():
        if value.is_floating_point():
            expected = keep * before[name] + (1 - keep) * current[name]
            torch.testing.assert_close(value, expected)
        else:
            assert torch.equal(value, current[name]), name
    # the trained model is untouched, and the average is not trainable
    assert all(not p.requires_grad for p in average.module.parameters())
    assert all(p.requires_grad for p in model.parameters())


def test_later_updates_use_the_decay():
    model = UNet.from_config(TINY)
    average = WeightAverage(model, 0.5)
    for _ in range(20):
        average.update(model)
    first = next(iter(average.module.parameters())).detach().clone()
    with torch.no_grad():
        next(iter(model.parameters())).add_(1.0)
    average.update(model)
    torch.testing.assert_close(next(iter(average.module.parameters())), first + 0.5)


def test_a_run_saves_the_average_and_not_the_latest_weights(tmp_path, monkeypatch):
    """The saved weights equal an independent average of the weights after every step."""
    seen = []
    original = loop._Trainer._step

    def step_and_record(self):
        if not seen:  # the start, which the average begins from
            seen.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        done = original(self)
        seen.append({k: v.detach().clone() for k, v in self.model.state_dict().items()})
        return done

    monkeypatch.setattr(loop._Trainer, "_step", step_and_record)
    config = TrainConfig(patch_size=64, batch_size=2, epochs=1, steps_per_epoch=12, eval_every=12,
                         preview_every=100, val_fraction=0.0, seed=0, device="cpu", num_threads=1, warmup_steps=1,
                         weight_average=0.9)
    out = tmp_path / "model"
    assert list(loop.train(_sample(), TINY, config, out_dir=out))[-1].done
    saved = load_model(out)[0].state_dict()
    assert len(seen) == 13
    expected = dict(seen[0])
    for n, weights in enumerate(seen[1:], start=1):
        keep = min(0.9, (1 + n) / (10 + n))
        expected = {k: keep * expected[k] + (1 - keep) * v if v.is_floating_point() else v
                    for k, v in weights.items()}
    for k, v in saved.items():
        torch.testing.assert_close(v, expected[k].to(v.dtype), rtol=1e-4, atol=1e-5, msg=k)
    latest = seen[-1]
    assert any(not torch.allclose(saved[k], latest[k], atol=1e-4) for k in saved if saved[k].is_floating_point())


def test_without_an_average_the_latest_weights_are_saved(tmp_path):
    config = TrainConfig(patch_size=64, batch_size=2, epochs=1, steps_per_epoch=6, eval_every=6,
                         preview_every=100, val_fraction=0.0, seed=0, device="cpu", num_threads=1, warmup_steps=1)
    trainer = loop._Trainer(_sample(), TINY, config, tmp_path / "m", None, None, None, lambda *a: [])
    assert trainer.average is None and trainer.scored is trainer.model


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5])
def test_weight_average_must_be_below_one(value):
    with pytest.raises(ConfigError, match="weight_average"):
        TrainConfig(weight_average=value)
