"""A Dask client for blockwise prediction: a ``LocalCluster`` sized to this machine, or an existing scheduler.

Shared by ``unet-studio predict --dask`` and the application's "Predict all" on big images. ``dask`` and
``distributed`` are optional (the ``dask`` extra): they are imported here, when a client is asked for.
"""

from __future__ import annotations

import asyncio
import logging
import os

from ..config import DEFAULT_NORMALIZATION
from ..errors import ConfigError
from .blockwise_plan import image_sample, percentile_scaler

NEEDS_DASK = "prediction on Dask needs the dask extra: pip install 'unet-studio[dask]'"
CONNECT_TIMEOUT_S = 8  # the message must come within 10 s, imports included
LOCAL_CLUSTER = "local"  # the address that means "a LocalCluster on this machine"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def local_workers() -> int:
    """One worker per GPU, else one per two CPU cores."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else max(1, _cores() // 2)


async def _probe(address: str, timeout_s: float) -> None:
    """Connect to ``address`` and exchange distributed's handshake, all within ``timeout_s``: a port that
    accepts and never answers (another service, a hung scheduler) fails here instead of hanging."""
    from distributed.comm import connect

    async def handshake() -> None:
        comm = await connect(address, timeout=timeout_s)
        try:
            await comm.write({"op": "identity"})
            await comm.read()
        finally:
            comm.abort()

    try:
        await asyncio.wait_for(handshake(), timeout_s)
    except asyncio.TimeoutError:
        raise TimeoutError("no answer") from None


def open_client(address: str, timeout_s: float = CONNECT_TIMEOUT_S):
    """A ``distributed.Client`` and the cluster this call started (``None`` for an existing scheduler).

    ``address`` is ``"local"`` (a ``LocalCluster``: :func:`local_workers` workers of one thread) or a
    scheduler's address (``tcp://host:8786``). Raises :class:`ConfigError` when ``distributed`` is missing,
    and within ``timeout_s`` when the scheduler at ``address`` does not answer.
    """
    try:
        import distributed
    except ImportError:
        raise ConfigError(NEEDS_DASK) from None
    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # --debug shows the cluster's own log
        logging.getLogger("distributed").setLevel(logging.WARNING)
    if address == LOCAL_CLUSTER:
        cluster = distributed.LocalCluster(n_workers=local_workers(), threads_per_worker=1, processes=True,
                                           dashboard_address=":0", silence_logs=logging.ERROR)
        return distributed.Client(cluster), cluster
    try:
        # a probe on an event loop of its own first: a Client that cannot connect leaves its loop thread behind
        asyncio.run(_probe(address, timeout_s))
        return distributed.Client(address, timeout=timeout_s), None
    except (OSError, TimeoutError, ValueError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise ConfigError(f"no Dask scheduler answers at {address} within {timeout_s:g} s ({reason}); check the "
                          "address, or start one (dask scheduler, or a dask-jobqueue cluster), or use this "
                          "machine") from None


def close_client(client, cluster) -> None:
    """Close what :func:`open_client` opened (the client, and the cluster when it started one)."""
    if client is not None:
        client.close()
    if cluster is not None:
        cluster.close()


def blockwise_scaler(info, image):
    """The model's input normalisation with limits from the whole image (a coarse level), not per block.

    ``info`` is the model's :class:`~unet_studio.core.model.ModelInfo`; None when the model takes its input
    as it is.
    """
    spec = {**DEFAULT_NORMALIZATION, **(info.normalization or {})}
    if spec.get("method", "percentile") == "none":
        return None
    if spec.get("method") != "percentile":
        raise ConfigError(f"unknown normalisation method {spec.get('method')!r} in the model folder")
    return percentile_scaler(image_sample(image), float(spec["low"]), float(spec["high"]))


__all__ = ["CONNECT_TIMEOUT_S", "LOCAL_CLUSTER", "NEEDS_DASK", "blockwise_scaler", "close_client", "local_workers",
           "open_client"]
