"""``unet-studio train --gpus N``, and each process of ``torchrun --nproc-per-node N -m unet_studio.cli train``:
one training run on N processes with PyTorch DDP (see :mod:`unet_studio.core.train.distributed`).

``--gpus N`` starts the N processes itself with ``torch.multiprocessing`` (spawn): one per GPU with NCCL on a
machine with N CUDA GPUs, or N CPU processes with gloo where there is no GPU (or with ``--device cpu``).
Under torchrun (``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set) this process is one rank of the run.
Rank 0 prints the progress and writes the model folder; the other ranks print nothing but their errors.

A rank that fails ends the run: ``--gpus`` stops the other processes and prints one line naming the rank
and its error (exit status non-zero); torchrun does the same for the processes it started.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable

RankRunner = Callable[..., int]  # run(args, ranks) -> exit status: one rank's training (cli.train.run)

MAX_PROCESSES = 4096

#: Seconds the processes get to save after Ctrl-C before they are terminated.
STOP_GRACE_S = 30.0


def wants_distributed(args: argparse.Namespace) -> bool:
    """Whether the run is distributed: ``--gpus`` above 1, or started by torchrun."""
    from ..core.train import launched_by_torchrun
    from .checks import check_int

    check_int("--gpus", args.gpus, 1, MAX_PROCESSES)
    return (args.gpus is not None and args.gpus > 1) or launched_by_torchrun()


def run_distributed(args: argparse.Namespace, run_rank: RankRunner) -> int:
    """Train on several processes; ``run_rank(args, ranks)`` is one rank's training. Returns the exit status.

    Raises
    ------
    ConfigError
        ``--gpus`` beyond this machine's GPUs, or ``--gpus`` under torchrun.
    TrainingError
        A rank failed (its message, one line).
    """
    from ..core.train import launched_by_torchrun

    if launched_by_torchrun():
        return _torchrun_rank(args, run_rank)
    return _spawn_ranks(args, run_rank)


def _torchrun_rank(args: argparse.Namespace, run_rank: RankRunner) -> int:
    from ..core.errors import ConfigError
    from ..core.train import choose_backend, ranks_from_env

    if args.gpus is not None:
        raise ConfigError("--gpus starts its own processes: under torchrun leave it out (torchrun's "
                          "--nproc-per-node says how many)")
    ranks = ranks_from_env(choose_backend(args.device, 0))
    return _train_as_rank(args, ranks, run_rank, address=None)


def _spawn_ranks(args: argparse.Namespace, run_rank: RankRunner) -> int:
    import torch.multiprocessing as mp

    from ..core.train import choose_backend, free_port
    from .train import check_args

    check_args(args)  # bad options: one message here, not one per process
    world = args.gpus
    backend = choose_backend(args.device, world)
    address = f"tcp://127.0.0.1:{free_port()}"
    results = mp.get_context("spawn").SimpleQueue()
    processes = mp.start_processes(_spawned_rank, args=(args, world, backend, address, results, run_rank),
                                   nprocs=world, join=False, start_method="spawn")
    # torch logs each process it terminates after a failure; the failure itself is our one line.
    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)
    try:
        while not processes.join():
            pass
    except (mp.ProcessExitedException, mp.ProcessRaisedException) as exc:
        raise _rank_failure(exc, _drain(results), world) from None
    except KeyboardInterrupt:
        _stop(processes)
        raise
    return max((code for _, code, _ in _drain(results)), default=0)


def _rank_failure(exc, reports: list[tuple[int, int, str | None]], world: int):
    """The error to show when a rank failed: the first failure reported by a rank (the cause; the
    others fail after it), else how the process ended."""
    from ..core.errors import TrainingError

    failures = [(rank, message) for rank, _, message in reports if message]
    if failures:
        rank, why = failures[0]
    else:
        rank = exc.error_index
        code = getattr(exc, "exit_code", None)
        signal_name = getattr(exc, "signal_name", None)
        why = f"the process ended by {signal_name}" if signal_name else f"the process ended with status {code}"
        if signal_name == "SIGKILL":
            why += " (out of memory?)"
    return TrainingError(f"training on {world} processes stopped: rank {rank}: {why}")


def _drain(results) -> list[tuple[int, int, str | None]]:
    out = []
    while not results.empty():
        out.append(results.get())
    return out


def _stop(processes) -> None:
    """After Ctrl-C or SIGTERM: let the processes save and end (a terminal's Ctrl-C reached them too; a
    signal to this process alone is passed on), then terminate those still running."""
    _join_all(processes.processes, 2.0)
    for process in processes.processes:
        if process.is_alive():
            os.kill(process.pid, signal.SIGINT)
    _join_all(processes.processes, STOP_GRACE_S)
    for process in processes.processes:
        if process.is_alive():
            process.terminate()
            process.join()


def _join_all(processes, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.0))


def _spawned_rank(index: int, args: argparse.Namespace, world: int, backend: str, address: str, results,
                  run_rank: RankRunner) -> None:
    """One process started by ``--gpus``: train as rank ``index`` and report (rank, status, error) to the parent."""
    from ..core.train import Ranks, exit_spawned_rank

    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="unet-studio train: %(levelname)s: %(message)s")
    # A scheduler's SIGTERM (Slurm signals every process of the job) stops a rank as Ctrl-C does: rank 0 saves.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    ranks = Ranks(rank=index, world_size=world, local_rank=index, backend=backend)
    failed: list[int] = []

    def report(exc: BaseException) -> None:
        # Reported before this rank leaves the process group: the ranks that fail because it left
        # report after it, so the parent names the cause.
        status, message = _failure(exc, args.debug, index)
        results.put((index, status, message))
        failed.append(status)

    try:
        code = _train_as_rank(args, ranks, run_rank, address, on_error=report)
    except BaseException:  # noqa: BLE001 - reported to the parent in one line (the traceback with --debug)
        exit_spawned_rank(failed[0] if failed else 1)
    results.put((index, code, None))
    exit_spawned_rank(0)  # the status is in the report; no interpreter teardown (see exit_spawned_rank)


def _failure(exc: BaseException, debug: bool, index: int) -> tuple[int, str | None]:
    """The exit status of a rank that stopped on ``exc``, and its one-line message (None for an interrupt)."""
    from ..core.errors import UNetStudioError

    if isinstance(exc, KeyboardInterrupt):
        return 130, None
    if isinstance(exc, UNetStudioError):
        return 2, str(exc)
    if debug:
        logging.error("rank %d failed", index, exc_info=exc)
    return 1, f"unexpected error: {type(exc).__name__}: {' '.join(str(exc).split())}"


def _train_as_rank(args: argparse.Namespace, ranks, run_rank: RankRunner, address: str | None,
                   on_error: Callable[[BaseException], None] | None = None) -> int:
    """Join the process group, train as ``ranks`` says (quiet unless rank 0), leave the group; ``on_error``
    hears of an error while this rank is still in the group."""
    from ..core.train import end_process_group, start_process_group

    finished = False
    try:
        gpu = start_process_group(ranks, address=address)
        with _quiet_unless_main(ranks):
            code = run_rank(_rank_args(args, ranks, gpu), ranks)
        finished = True
        return code
    except BaseException as exc:
        if on_error is not None:
            on_error(exc)
        raise
    finally:
        end_process_group(wait_for_others=finished)


def _rank_args(args: argparse.Namespace, ranks, gpu) -> argparse.Namespace:
    """This rank's options: its own GPU, and (CPU processes) its share of the cores."""
    changes = {}
    if gpu is not None:
        changes["device"] = str(gpu)
    elif args.device in ("auto", "cpu"):
        changes["device"] = "cpu"
        if args.threads is None:  # N processes with a thread per core each would fight over the cores
            changes["threads"] = max(1, (os.cpu_count() or 1) // ranks.world_size)
    return argparse.Namespace(**{**vars(args), **changes})


@contextlib.contextmanager
def _quiet_unless_main(ranks):
    """Ranks other than 0 print nothing while they train (rank 0 shows progress); errors still reach the person."""
    if ranks.is_main:
        yield
        return
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
        try:
            yield
        finally:
            root.setLevel(level)
