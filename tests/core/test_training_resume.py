"""Resuming restores the optimizer's moments (saved beside the weights at the end of a run)."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from test_training import TINY, _config, _dataset, _run

from unet_studio.core.model.checkpoint import load_model, load_optimizer_state
from unet_studio.core.model.unet import UNet
from unet_studio.core.train import train
from unet_studio.core.train.setup import optimizer_tensors, restore_optimizer


pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def _optimizer_file(folder):
    meta = json.loads((folder / "model.json").read_text())
    return meta.get("optimizer"), sorted(p.name for p in folder.glob("optimizer-*.safetensors"))


def test_a_finished_run_saves_its_optimizer_moments_beside_the_weights(tmp_path):
    _run(_dataset(), _config(steps_per_epoch=8, eval_every=4), tmp_path / "m")
    named, present = _optimizer_file(tmp_path / "m")
    assert named and present == [named]
    state = load_optimizer_state(tmp_path / "m")
    params = list(UNet.from_config(load_model(tmp_path / "m")[1].model_config).parameters())
    assert len(state) == 3 * len(params)
    assert all(float(state[f"{i}.step"]) == 8 for i in range(len(params)))
    assert all(state[f"{i}.exp_avg"].shape == p.shape for i, p in enumerate(params))
    assert any(state[f"{i}.exp_avg_sq"].abs().sum() > 0 for i in range(len(params)))


def _train_then_resume(first, second, source, target, caplog) -> str:
    """Train ``first`` steps into ``source``, resume ``second`` steps into ``target``; return the log."""
    dataset = _dataset()
    _run(dataset, _config(steps_per_epoch=first, eval_every=first // 2), source)
    with caplog.at_level(logging.INFO, logger="unet_studio.core.train"):
        _run(dataset, _config(steps_per_epoch=second, eval_every=second // 2), target, init_from=source)
    return caplog.text


def test_resuming_restores_the_moments_and_their_step_count_goes_on(tmp_path, caplog):
    assert "resuming with the optimizer state" in _train_then_resume(8, 6, tmp_path / "m", tmp_path / "m2", caplog)
    state = load_optimizer_state(tmp_path / "m2")
    assert float(state["0.step"]) == 8 + 6  # Adam's bias correction continues instead of starting again


def test_continuing_in_place_reads_the_moments_before_the_first_save_replaces_them(tmp_path, caplog):
    assert "resuming with the optimizer state" in _train_then_resume(4, 4, tmp_path / "m", tmp_path / "m", caplog)
    assert float(load_optimizer_state(tmp_path / "m")["0.step"]) == 8
    assert len(_optimizer_file(tmp_path / "m")[1]) == 1  # the previous optimizer file was removed


def test_a_damaged_optimizer_file_means_fresh_moments_not_a_failure(tmp_path, caplog):
    dataset = _dataset()
    _run(dataset, _config(steps_per_epoch=4, eval_every=2), tmp_path / "m")
    named, _ = _optimizer_file(tmp_path / "m")
    path = tmp_path / "m" / named
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")
    with caplog.at_level(logging.WARNING):
        assert load_optimizer_state(tmp_path / "m") is None
        reports = _run(dataset, _config(steps_per_epoch=4, eval_every=2), tmp_path / "m2", init_from=tmp_path / "m")
    assert "checksum" in caplog.text and reports[-1].done
    assert float(load_optimizer_state(tmp_path / "m2")["0.step"]) == 4  # fresh moments, counted from zero
    load_model(tmp_path / "m")  # the weights themselves are untouched and still load


def test_moments_of_another_network_are_not_restored():
    small, other = UNet.from_config(TINY), UNet.from_config(TINY.replace(base_channels=6))
    opt_small = torch.optim.AdamW(small.parameters())
    small(torch.rand(1, 1, 32, 32)).sum().backward()
    opt_small.step()
    saved = optimizer_tensors(opt_small)
    opt_other = torch.optim.AdamW(other.parameters())
    assert not restore_optimizer(opt_other, saved)
    assert not opt_other.state  # nothing half-loaded
    again = torch.optim.AdamW(small.parameters())
    assert restore_optimizer(again, saved)
    assert all(torch.equal(again.state[p]["exp_avg"], opt_small.state[p]["exp_avg"]) for p in small.parameters())


def test_stopping_early_saves_the_moments_too(tmp_path):
    run = train(_dataset(), TINY, _config(steps_per_epoch=100, eval_every=50), out_dir=tmp_path / "m")
    for progress in run:
        if progress.step == 3:
            break
    run.close()
    assert float(load_optimizer_state(tmp_path / "m")["0.step"]) == 3
