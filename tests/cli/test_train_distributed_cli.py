"""``unet-studio train --gpus N`` (DDP on N gloo CPU processes here) and the torchrun entry: one loadable model
folder, a failing rank ends the run with one line, --gpus beyond the machine's GPUs is refused."""

from __future__ import annotations

import argparse

import pytest
import torch
import torch.distributed as dist
from fs_helpers import training_folders

from unet_studio import cli
from unet_studio.cli import train as train_cli
from unet_studio.cli.train_distributed import run_distributed
from unet_studio.core import presets
from unet_studio.core.config import ModelConfig, TrainConfig
from unet_studio.core.errors import ConfigError, DataError, TrainingError
from unet_studio.core.model import load_model
from unet_studio.core.train import SINGLE_PROCESS, Ranks, free_port, ranks_from_env

pytestmark = pytest.mark.usefixtures("restore_torch_threads")


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if "error" in line]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_gpus_2_trains_on_two_cpu_processes_and_writes_one_model(tmp_path, capfd):
    images, labels = training_folders(tmp_path, n=2, size=48)
    out = tmp_path / "model"
    # The spawned processes import the real presets (a monkeypatch here does not reach them): the fast
    # preset, held to a few steps by the time limit.
    code = cli.main(["train", "--gpus", "2", "--threads", "1", "--images", str(images), "--labels", str(labels),
                     "--out", str(out), "--epochs", "1", "--time-limit", "2"])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    assert "model saved to" in captured.out
    assert captured.out.count("model saved to") == 1  # rank 1 prints nothing
    model, info = load_model(out)
    assert not any(key.startswith("module.") for key in model.state_dict())
    assert info.extra["steps"] >= 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "labels", "model"]
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def _fail_on_rank_1(args, ranks) -> int:
    """A rank runner: rank 1 fails at once while rank 0 waits for it in a collective."""
    if ranks.rank == 1:
        raise DataError("the labels of this rank are broken")
    dist.barrier()
    return 0


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--debug", action="store_true")
    train_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_a_failing_rank_ends_the_run_with_its_message(tmp_path):
    args = _args("--images", str(tmp_path), "--labels", str(tmp_path), "--out", str(tmp_path / "m"), "--gpus", "2",
                 "--device", "cpu", "--threads", "1")
    with pytest.raises(TrainingError) as caught:
        run_distributed(args, _fail_on_rank_1)
    message = str(caught.value)
    assert "rank 1" in message and "the labels of this rank are broken" in message
    assert "\n" not in message


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA GPUs")
def test_more_gpus_than_the_machine_has_is_refused(tmp_path, capsys):
    images, labels = training_folders(tmp_path, n=1)
    code = cli.main(["train", "--gpus", "2", "--device", "cuda", "--images", str(images), "--labels", str(labels),
                     "--out", str(tmp_path / "m")])
    assert code == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "--gpus 2" in line and "0 CUDA GPU" in line
    assert not (tmp_path / "m").exists()


def test_gpus_must_be_a_positive_number(tmp_path, capsys):
    images, labels = training_folders(tmp_path, n=1)
    code = cli.main(["train", "--gpus", "0", "--images", str(images), "--labels", str(labels),
                     "--out", str(tmp_path / "m")])
    assert code == 2
    assert "--gpus must be a whole number from 1" in _one_line_error(capsys.readouterr().err)


def test_a_distributed_run_stops_on_out_of_memory_instead_of_halving_one_rank():
    SINGLE_PROCESS.refuse_halving(8, "CPU")  # one process halves its batch and goes on
    with pytest.raises(TrainingError, match="rank 1 ran out of memory with 8 patches per step"):
        Ranks(rank=1, world_size=2).refuse_halving(8, "CPU")


def test_ranks_from_the_torchrun_environment():
    ranks = ranks_from_env("gloo", {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert (ranks.rank, ranks.world_size, ranks.local_rank, ranks.is_main) == (1, 4, 1, False)
    assert ranks.sampling_seed(7) == 8
    with pytest.raises(ConfigError, match="RANK 4 does not fit WORLD_SIZE 2"):
        ranks_from_env("gloo", {"RANK": "4", "WORLD_SIZE": "2", "LOCAL_RANK": "0"})


@pytest.fixture
def tiny_preset(monkeypatch):
    def tiny(name, in_channels=1, n_classes=2):
        return (ModelConfig(in_channels=in_channels, n_classes=n_classes, base_channels=4, depth=3, norm="batch"),
                TrainConfig(patch_size=32, batch_size=2, epochs=1, steps_per_epoch=3, eval_every=3))

    monkeypatch.setattr(presets, "preset_configs", tiny)


def test_a_torchrun_process_trains_as_its_rank(tmp_path, monkeypatch, capsys, tiny_preset):
    # What torchrun sets in each process it starts (here a world of one, in this process).
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(free_port())}.items():
        monkeypatch.setenv(name, value)
    images, labels = training_folders(tmp_path, n=1)
    argv = ["train", "--threads", "1", "--device", "cpu", "--images", str(images), "--labels", str(labels),
            "--out", str(tmp_path / "m")]
    assert cli.main(argv + ["--gpus", "2"]) == 2
    assert "leave it out" in _one_line_error(capsys.readouterr().err)
    assert cli.main(argv) == 0
    assert not dist.is_initialized()  # the process group was left
    load_model(tmp_path / "m")
