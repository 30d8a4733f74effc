"""DDP training on 2 gloo (CPU) processes: the same steps as one process with the combined batch, rank 0's
decision to stop ends every rank, and one loadable model folder without ``module.`` prefixes.

Each test spawns 2 processes with ``torch.multiprocessing`` on a free port; a process group timeout of a
minute turns a hang into a failure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from unet_studio.core.config import ModelConfig, TrainConfig
from unet_studio.core.model import load_model
from unet_studio.core.train import (
    Ranks,
    TrainingSet,
    end_process_group,
    exit_spawned_rank,
    free_port,
    start_process_group,
    train,
)

pytestmark = pytest.mark.usefixtures("restore_torch_threads")

WORLD = 2
PER_RANK = 2  # patches per rank and step; one process takes WORLD * PER_RANK
STEPS = 3
PATCH = 16
TIMEOUT = timedelta(seconds=60)
# Float32 sums in another order (all-reduced gradients and batch statistics) move most weights by ~1e-7;
# AdamW's normalised step amplifies that where a gradient is near zero: the largest difference measured
# here was 6e-6 (one weight of the deepest convolution). Per-rank batch norm instead of synchronised
# batch norm moves weights by 7e-2.
ATOL = 5e-5

MODEL = ModelConfig(in_channels=1, n_classes=2, base_channels=4, depth=3, norm="batch")


@dataclass
class Batch:
    images: np.ndarray
    labels: np.ndarray
    weights: np.ndarray | None = None


class FixedSampler:
    """Hands out the given batches in order (the training loop's ``sampler`` seam)."""

    def __init__(self, batches: list[Batch]) -> None:
        self.batches = list(batches)

    def sample(self, n: int) -> Batch:
        batch = self.batches.pop(0)
        assert len(batch.images) == n
        return batch


def _dataset() -> TrainingSet:
    rng = np.random.default_rng(1)
    labels = rng.integers(1, 3, (32, 32))
    return TrainingSet([rng.random((32, 32), dtype=np.float32)], [labels], 2)


def _steps() -> tuple[np.ndarray, np.ndarray]:
    """The patches of every step: (STEPS, WORLD * PER_RANK, 1, P, P) images and their dense labels.

    Each rank's labels hold the same number of pixels of each class (rank 1's are rank 0's mirrored):
    the class-weighted mean loss of each rank then has the same denominator, so the mean of the ranks'
    losses (what DDP's averaged gradients descend) is the loss of the combined batch.
    """
    rng = np.random.default_rng(2)
    images = rng.normal(size=(STEPS, WORLD * PER_RANK, 1, PATCH, PATCH)).astype(np.float32)
    first = rng.integers(1, 3, (STEPS, PER_RANK, PATCH, PATCH))
    labels = np.concatenate([first] + [first[..., ::-1]] * (WORLD - 1), axis=1)
    return images, np.ascontiguousarray(labels)


def _config(batch: int, **changes) -> TrainConfig:
    return TrainConfig(patch_size=PATCH, batch_size=batch, epochs=1, steps_per_epoch=STEPS, eval_every=STEPS,
                       augment=False, intensity_augment=False, val_fraction=0.0, amp=False, device="cpu",
                       num_threads=1, preview_every=0, learning_rate=1e-2, warmup_steps=0, **changes)


def _train_rank(rank: int, address: str, out: str, configs: dict[int, TrainConfig], steps_seen) -> None:
    """One rank of the run (spawned): train on its share of each step's patches; rank 0 saves to ``out``."""
    ranks = Ranks(rank=rank, world_size=WORLD, local_rank=rank, backend="gloo")
    start_process_group(ranks, address, timeout=TIMEOUT)
    finished = False
    try:
        images, labels = _steps()
        mine = slice(rank * PER_RANK, (rank + 1) * PER_RANK)
        sampler = FixedSampler([Batch(images[s, mine], labels[s, mine]) for s in range(STEPS)])
        run = train(_dataset(), MODEL, configs[rank], out_dir=out if ranks.is_main else None, ranks=ranks,
                    sampler=sampler)
        last = list(run)[-1]
        steps_seen.put((rank, last.step, str(last.model_dir)))
        finished = True
    finally:
        end_process_group(wait_for_others=finished)
    exit_spawned_rank(0)  # as `train --gpus` ends its ranks


def _spawn(out, configs) -> dict[int, tuple[int, str]]:
    results = mp.get_context("spawn").SimpleQueue()
    mp.start_processes(_train_rank, args=(f"tcp://127.0.0.1:{free_port()}", str(out), configs, results),
                       nprocs=WORLD, join=True, start_method="spawn")
    seen = {}
    while not results.empty():
        rank, step, model_dir = results.get()
        seen[rank] = (step, model_dir)
    return seen


def test_two_gloo_ranks_train_as_one_process_with_the_combined_batch(tmp_path):
    configs = {rank: _config(PER_RANK) for rank in range(WORLD)}
    seen = _spawn(tmp_path / "ddp", configs)
    assert {rank: step for rank, (step, _) in seen.items()} == {0: STEPS, 1: STEPS}
    assert seen[0][1] == str(tmp_path / "ddp") and seen[1][1] == "None"  # rank 1 kept nothing, wrote nothing

    images, labels = _steps()
    sampler = FixedSampler([Batch(images[s], labels[s]) for s in range(STEPS)])
    list(train(_dataset(), MODEL, _config(WORLD * PER_RANK), out_dir=tmp_path / "single", sampler=sampler))

    ddp, _ = load_model(tmp_path / "ddp")  # the ordinary loader: plain BatchNorm names, no "module." prefix
    single, _ = load_model(tmp_path / "single")
    start = type(single).from_config(single.config)
    ddp_state, single_state, start_state = ddp.state_dict(), single.state_dict(), start.state_dict()
    assert ddp_state.keys() == single_state.keys()
    assert not any(key.startswith("module.") for key in ddp_state)
    for key, value in single_state.items():
        assert torch.allclose(ddp_state[key].float(), value.float(), atol=ATOL, rtol=0), key
    # The comparison means something: the weights and the batch norm statistics moved.
    assert any(not torch.allclose(start_state[key].float(), single_state[key].float(), atol=1e-3)
               for key in single_state if key.endswith("running_mean"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ddp", "single"]


def test_rank_0_decides_when_every_rank_stops(tmp_path):
    # Rank 0's time limit is up before the first step; rank 1 has none and would go on (and wait in
    # DDP's all-reduce for a partner that never comes) if it did not follow rank 0.
    configs = {0: _config(PER_RANK, time_limit_s=1e-9), 1: _config(PER_RANK)}
    seen = _spawn(tmp_path / "m", configs)
    assert {rank: step for rank, (step, _) in seen.items()} == {0: 0, 1: 0}
    load_model(tmp_path / "m")
