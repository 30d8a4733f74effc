"""Training on several processes with PyTorch DDP (:class:`torch.nn.parallel.DistributedDataParallel`).

One process per GPU with the NCCL backend, or N CPU processes with gloo. The processes are started by
``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) or by
``torch.multiprocessing`` (``unet-studio train --gpus N``); this module writes no launcher of its own.

What each rank does differently is the business of :class:`Ranks`, which :func:`~.loop.train` takes:

- each rank samples its own patches and augmentations (seed + rank); the validation split, made with
  the run's seed, is the same on every rank, so no rank trains on what rank 0 validates on;
- batch norm is synchronised across ranks (:mod:`.sync_norm`) and DDP averages the gradients, so N
  ranks of batch b take the steps one process of batch N*b would (the per-rank batch is the preset's);
- validation, the kept model and early stopping are decided on rank 0 and broadcast every step
  (:meth:`Ranks.agree`), so every rank stops at the same step; only rank 0 writes the model folder.

The process group has a timeout (:data:`DEFAULT_TIMEOUT`): a rank that dies makes the others fail
within it rather than wait forever (gloo usually notices a closed connection at once).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..errors import ConfigError, TrainingError
from .sync_norm import synchronise_batch_norm

log = logging.getLogger(__name__)

#: How long a rank waits for the others in one collective before it fails (rank 0 validating and
#: saving while the others wait for the next step counts against it).
DEFAULT_TIMEOUT = timedelta(minutes=30)

_LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Ranks:
    """This process's place in a distributed training run (the defaults: a run of one process).

    Attributes
    ----------
    rank
        This process's number, 0 .. world_size - 1; rank 0 validates and saves.
    world_size
        The number of processes.
    local_rank
        The number of this process on its machine (its GPU).
    backend
        ``"nccl"`` (GPUs) or ``"gloo"`` (CPUs); where the collectives' tensors live.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str = "gloo"

    @property
    def is_main(self) -> bool:
        """Whether this process validates, decides when to stop and writes the model folder."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    def sampling_seed(self, seed: int) -> int:
        """The seed of this rank's patch sampling and augmentation: its own on each rank."""
        return seed + self.rank

    def sampling_rng(self, seed: int) -> np.random.Generator | None:
        """This rank's own random generator for patch sampling, or None in a run of one process."""
        return np.random.default_rng(self.sampling_seed(seed)) if self.distributed else None

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """The module to train through: ``model`` itself, or (distributed) ``model`` with synchronised
        batch norm (converted in place) inside DistributedDataParallel. ``model`` stays the module to
        validate, preview and save (no ``module.`` prefix in its weights)."""
        if not self.distributed:
            return model
        synchronise_batch_norm(model, device)
        device_ids = [device] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=device_ids)

    def describe(self, device: str) -> str:
        """What the run trains on, for the person: ``device`` itself, or ``N processes on ...``."""
        return f"{self.world_size} processes ({self.backend}) on {device}" if self.distributed else device

    def refuse_halving(self, batch_size: int, device: str) -> None:
        """After an out-of-memory error: nothing in a run of one process (it halves its batch); a
        distributed run cannot halve one rank's batch (the ranks would fall out of step), so it stops.

        Raises
        ------
        TrainingError
            In a distributed run.
        """
        if self.distributed:
            raise TrainingError(
                f"rank {self.rank} ran out of memory with {batch_size} patches per step on {device}; a run on "
                "several processes cannot halve its batch: close other programs on the GPUs, choose the fast "
                "preset or a smaller network, or train on one process (without --gpus) where the batch adapts")

    def mean(self, value: torch.Tensor) -> torch.Tensor:
        """The mean of a tensor over the ranks (the tensor itself in a run of one process)."""
        if not self.distributed:
            return value
        total = value.detach().clone()
        dist.all_reduce(total)
        return total / self.world_size

    def agree(self, stop: bool, elapsed_s: float) -> tuple[bool, float]:
        """Rank 0's ``stop`` and ``elapsed_s`` on every rank (one broadcast): all ranks stop at the same
        step, and a learning rate that follows the time (a time limit) is the same on all of them."""
        if not self.distributed:
            return stop, elapsed_s
        shared = torch.tensor([1.0 if stop else 0.0, elapsed_s], dtype=torch.float64,
                              device=self._collective_device())
        dist.broadcast(shared, src=0)
        flag, elapsed = shared.tolist()
        return flag > 0.5, elapsed

    def _collective_device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if self.backend == "nccl" else torch.device("cpu")


#: A run of one process: every method of :class:`Ranks` is a no-op.
SINGLE_PROCESS = Ranks()


def launched_by_torchrun(environ: dict[str, str] | None = None) -> bool:
    """Whether this process is one rank of a run that ``torchrun`` (or a similar launcher) started."""
    env = os.environ if environ is None else environ
    return all(name in env for name in _LAUNCH_VARIABLES)


def ranks_from_env(backend: str, environ: dict[str, str] | None = None) -> Ranks:
    """This process's :class:`Ranks` from the variables torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK).

    Raises
    ------
    ConfigError
        A variable missing or not a whole number, or a rank outside the world.
    """
    env = os.environ if environ is None else environ
    try:
        rank, world, local = (int(env[name]) for name in _LAUNCH_VARIABLES)
    except (KeyError, ValueError):
        raise ConfigError("a distributed run needs RANK, WORLD_SIZE and LOCAL_RANK as whole numbers (torchrun "
                          "sets them); start it with torchrun or with --gpus N") from None
    if not (world >= 1 and 0 <= rank < world and local >= 0):
        raise ConfigError(f"RANK {rank} does not fit WORLD_SIZE {world}; start the run with torchrun or --gpus N")
    return Ranks(rank=rank, world_size=world, local_rank=local, backend=backend)


def choose_backend(device: str, gpus_wanted: int) -> str:
    """``"nccl"`` when the run trains on CUDA GPUs, else ``"gloo"`` (CPU processes).

    Raises
    ------
    ConfigError
        More GPUs asked for than this machine has (``gpus_wanted``; 0 when the launcher chose).
    """
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if not use_cuda:
        return "gloo"
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus_wanted > available:
        raise ConfigError(f"--gpus {gpus_wanted} but this machine has {available} CUDA GPU(s); ask for at most "
                          f"{available}, or train on CPU processes with --device cpu")
    return "nccl" if dist.is_nccl_available() else "gloo"


def start_process_group(ranks: Ranks, address: str | None = None,
                        timeout: timedelta = DEFAULT_TIMEOUT) -> torch.device | None:
    """Join the process group; return the GPU of this rank when the backend is NCCL (made the current
    CUDA device), else None.

    Parameters
    ----------
    ranks
        This process's place in the run.
    address
        Where rank 0 listens (``tcp://host:port``), or None to read ``MASTER_ADDR`` and ``MASTER_PORT``
        from the environment (torchrun sets them).
    timeout
        How long a collective waits for the other ranks before it fails.
    """
    device = None
    if ranks.backend == "nccl":
        device = torch.device("cuda", ranks.local_rank)
        torch.cuda.set_device(device)
    dist.init_process_group(ranks.backend, init_method=address or "env://", rank=ranks.rank,
                            world_size=ranks.world_size, timeout=timeout, device_id=device)
    log.info("rank %d of %d joined the %s process group", ranks.rank, ranks.world_size, ranks.backend)
    return device


def end_process_group(wait_for_others: bool = True) -> None:
    """Leave the process group (nothing when none was started), after the other ranks reach here too.

    ``wait_for_others=False`` after an error on this rank: the others may be inside a collective that this
    rank will never join, and a barrier would pair with it; leave at once (they fail on the lost peer).

    Without the barrier a rank that ends first can tear down gloo's connections (or rank 0 the rendezvous
    store) while another is still leaving, which aborts that one ("terminate called without an active
    exception", seen once in 3 CI runs). When a peer has died the barrier fails at once; leave anyway.
    """
    if dist.is_available() and dist.is_initialized():
        try:
            if wait_for_others:
                dist.barrier()
        except Exception as exc:  # noqa: BLE001 - a peer that died: nothing to wait for
            log.debug("leaving the process group without the others: %s", exc)
        dist.destroy_process_group()


def exit_spawned_rank(code: int) -> NoReturn:
    """End a process that ``torch.multiprocessing`` spawned as one rank, with exit status ``code``, without
    the interpreter's finalization.

    Call it after the rank has left the process group and written everything it leaves (rank 0's model
    folder is saved atomically before; a result put on a ``SimpleQueue`` is in the pipe at once). A spawned
    process otherwise ends through ``sys.exit``, which finalizes the interpreter and destroys what is left of
    torch's and gloo's C++ objects and threads in no fixed order. A rank of a finished 2-process gloo run was
    aborted with "terminate called without an active exception" (SIGABRT) in two CI runs of the
    test suite and once in 65 runs of the DDP tests on a loaded machine here, while its peer was still
    alive; the trace did not show where. Ending without finalization removes the one step of a finished rank
    whose order is not ours. Buffered output is flushed first; nothing else needs the finalization.
    """
    for handler in logging.getLogger().handlers:
        with contextlib.suppress(Exception):  # a closed stream does not stop the exit
            handler.flush()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the operating system's choice), for ``MASTER_PORT``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
