"""Predicting a big image from the application: blockwise, as ``unet-studio predict --dask`` does.

A big image's slice never fits the in-memory prediction path, so "Predict all" runs
:func:`~unet_studio.core.predict.iter_blockwise` on it (in the prediction worker: in this process, the same
task functions as on a Dask cluster one block after the other, memory that of one block; or on the Dask
scheduler chosen in Predict > Big Images on Dask, :mod:`.dask_choice`), writing
``predictions/NAME_labels.ome.zarr`` into the project folder (an OME-Zarr with a pyramid that Fiji and
napari open, and that the application shows over the image). Its progress reaches the progress bar; a
cancel stops it between blocks, and the next run continues with the blocks not yet done.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BigPrediction", "PREDICTIONS_DIR", "predict_big", "prediction_path"]

PREDICTIONS_DIR = "predictions"
"""Folder of the project where big images' predictions are written."""


@dataclass
class BigPrediction:
    """One step of :func:`predict_big`: blocks ``done`` of ``total``; ``labels`` (the output) on the last."""

    done: int
    total: int
    labels: Path | None = None
    failures: tuple[str, ...] = ()


def prediction_path(folder: Path, name: str) -> Path:
    """``predictions/NAME_labels.ome.zarr`` of a project folder."""
    return Path(folder) / PREDICTIONS_DIR / f"{name}_labels.ome.zarr"


def predict_big(model_dir: Path, info, path: Path, target: Path, block_size: int = 2048,
                address: str = "") -> Iterator[BigPrediction]:
    """Predict the big image ``path`` block by block into ``target`` (labels), yielding progress.

    ``address``: "" predicts in this process; ``"local"`` on a ``LocalCluster`` of this machine, any other
    value on the Dask scheduler there (``tcp://host:8786``), whose workers open the image and the model
    themselves (paths they must see). The client is opened here, in the caller's (worker) thread, and closed
    at the end. Closing the generator stops it; finished blocks are kept in a work folder beside ``target``
    and skipped by the next run.
    """
    from ...core.io import open_zarr
    from ...core.predict import BlockwiseConfig, ImageRef, blockwise_scaler, close_client, iter_blockwise, open_client

    image = open_zarr(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    config = BlockwiseConfig(block_size=block_size)
    client = cluster = None
    try:
        if address:
            client, cluster = open_client(address)
        source = ImageRef(str(path)) if client is not None else image  # workers open it themselves
        with contextlib.closing(iter_blockwise(source, str(model_dir), {"labels": target}, config, client,
                                               prepare=blockwise_scaler(info, image), pixel_size=image.pixel_size,
                                               unit="µm" if image.pixel_size else "", overwrite=True)) as steps:
            for step in steps:
                if step.stage == "done":
                    yield BigPrediction(step.total, step.total, Path((step.outputs or {})["labels"]))
                    return
                if step.stage == "failed":
                    yield BigPrediction(step.done, step.total, None, tuple(step.failures))
                    return
                if step.stage == "predict":
                    yield BigPrediction(step.done, step.total)
    finally:
        image.close()
        with contextlib.suppress(Exception):
            close_client(client, cluster)
