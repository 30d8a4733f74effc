"""The work of one block, as functions a Dask worker runs (or the calling process, without a cluster).

Each task takes its item (a :class:`~unet_studio.core.predict.blockwise_plan.Block`, with what that pass
needs) and the run's :class:`BlockJob` (sent to each worker once). The model is loaded once per worker
process and device (:func:`worker_model`), not once per block. A block writes only its own output chunks
(the chunks are the blocks), then records itself as finished with one atomic file, so a block cut short
by a kill is simply predicted again by the next run.
"""

from __future__ import annotations

import functools
import io
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import InferConfig
from ..errors import InferenceError, UNetStudioError
from .blockwise_merge import BlockObjects, face_pairs, halos, local_objects, measure_chosen
from .blockwise_plan import Block, read_region
from .instances import objects_of_slice
from .postprocess import InstanceConfig, probabilities_to_labels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BlockJob:
    """Everything fixed for a run that a block task needs (picklable: it travels to the workers).

    ``arrays`` maps an output (``labels``, ``probabilities``, ``objects``: the per-block objects before the
    merge, ``instances``) to the folder of its level-0 zarr array in the work folder.
    """

    source: Any
    model_dir: str
    work: str
    arrays: dict[str, str]
    infer: InferConfig
    class_values: tuple[int, ...]
    capacity: int
    prepare: Callable[[np.ndarray], np.ndarray] | None = None
    foreground: tuple[int, ...] = ()
    instance_mode: str = "distance"
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    missing_chunks: str = "error"
    device: str = "auto"
    torch_threads: int | None = None
    predictor: Callable | None = None

    def done_file(self, block: Block) -> Path:
        return Path(self.work) / "blocks" / f"{block.name}.npz"


@dataclass(frozen=True)
class BlockFailure:
    """A block that could not be predicted (a missing or corrupt chunk, NaN from the model): its message."""

    block: Block
    message: str


def _model_stamp(model_dir: str) -> tuple:
    folder = Path(model_dir)
    return tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.iterdir()) if p.is_file())


@functools.lru_cache(maxsize=2)
def _load(model_dir: str, stamp: tuple, device: str, threads: int | None):
    import torch

    from ..model import load_model

    if threads:
        torch.set_num_threads(threads)
    log.info("loading the model %s on %s", model_dir, device)
    return load_model(model_dir, device)[0]


def worker_device(device: str = "auto") -> str:
    """The device of this process: ``auto`` spreads Dask workers over the GPUs by their number, else the CPU."""
    import torch

    if device != "auto":
        return device
    if not torch.cuda.is_available():
        return "cpu"
    try:
        from distributed import get_worker

        name = get_worker().name
        index = int(name) if str(name).isdigit() else abs(hash(name))
    except (ImportError, ValueError):
        index = 0
    return f"cuda:{index % torch.cuda.device_count()}"


def worker_model(model_dir: str, device: str = "auto", threads: int | None = None):
    """The model of ``model_dir`` on this process's device, loaded once per process (and again only when the
    folder changes)."""
    return _load(str(model_dir), _model_stamp(model_dir), worker_device(device), threads)


def model_loads() -> int:
    """How many times this process loaded a model (for tests: one per worker, not one per block)."""
    return _load.cache_info().misses


def _open(path: str):
    import zarr

    return zarr.open_array(path, mode="r+")


def _save_objects(job: BlockJob, block: Block, objects: BlockObjects, seen: dict[str, np.ndarray]) -> None:
    from ..io import write_bytes

    buffer = io.BytesIO()
    np.savez(buffer, areas=objects.areas, boxes=objects.boxes, **{f"halo_{k}": v for k, v in seen.items()})
    job.done_file(block).parent.mkdir(parents=True, exist_ok=True)
    write_bytes(job.done_file(block), buffer.getvalue())


def load_objects(job: BlockJob, block: Block) -> BlockObjects:
    """The objects a finished block recorded."""
    with np.load(job.done_file(block)) as data:
        return BlockObjects(data["areas"], data["boxes"])


def _load_halos(job: BlockJob, block: Block) -> dict[str, np.ndarray]:
    """What a finished block saw beyond its top and left faces, in its local labels (none recorded: {})."""
    with np.load(job.done_file(block)) as data:
        return {name[len("halo_"):]: data[name] for name in data.files if name.startswith("halo_")}


def predict_block(block: Block, job: BlockJob) -> BlockObjects | BlockFailure:
    """Predict one block (its window, cropped to its core) and write its outputs; see the module docs."""
    from .tiled import predict_probabilities

    try:
        raw = read_region(job.source, block.window, job.missing_chunks)
        image = job.prepare(raw) if job.prepare is not None else raw.astype(np.float32, copy=False)
        model = worker_model(job.model_dir, job.device, job.torch_threads)
        probs = predict_probabilities(model, image, job.infer, job.predictor)
        if not np.isfinite(probs).all():
            raise InferenceError("the model gave NaN or infinite probabilities; check the model and the pixels")
    except UNetStudioError as exc:  # the data's fault: retrying on another worker would not help
        return BlockFailure(block, f"{block.describe()}: {' '.join(str(exc).split())}")
    crop = (slice(None),) + block.crop
    y0, y1, x0, x1 = block.core
    core = (slice(y0, y1), slice(x0, x1))
    if "probabilities" in job.arrays:
        _open(job.arrays["probabilities"])[(slice(None),) + core] = probs[crop]
    if "labels" in job.arrays:
        _open(job.arrays["labels"])[core] = probabilities_to_labels(probs[crop], job.class_values, job.infer.thresholds)
    objects = BlockObjects(np.zeros(0, np.int64), np.zeros((0, 4), np.int64))
    seen: dict[str, np.ndarray] = {}
    if "objects" in job.arrays:
        # on the window, so that the watershed sees real context; min_size is applied after the merge
        config = InstanceConfig(**{**job.instance.to_dict(), "min_size": 0})
        found = objects_of_slice(probs, job.infer.thresholds, list(job.foreground), job.instance_mode, config)
        local, objects = local_objects(found[block.crop], (y0, x0))
        seen = halos(found, block.crop, local)
        target = _open(job.arrays["objects"])
        target[core] = np.where(local > 0, local + block.index * job.capacity, 0).astype(target.dtype)
    _save_objects(job, block, objects, seen)
    return objects


def block_faces(block: Block, job: BlockJob) -> np.ndarray:
    """Pairs of (offset) labels that are one object cut by the block's top or left face: the neighbours'
    labels of the pixels beyond each face against this block's view of the same pixels (see
    :mod:`.blockwise_merge`)."""
    raw = _open(job.arrays["objects"])
    seen = _load_halos(job, block)
    offset = block.index * job.capacity
    y0, y1, x0, x1 = block.core

    def mine(name: str, own_edge: np.ndarray) -> np.ndarray:
        if name not in seen:  # recorded by a version without halos: the block's own first row or column
            return np.asarray(own_edge)
        return np.where(seen[name] > 0, seen[name] + offset, 0)

    above = below = left = right = None
    if y0 > 0:
        above, below = raw[y0 - 1, x0:x1], mine("above", raw[y0, x0:x1])
    if x0 > 0:
        left, right = raw[y0:y1, x0 - 1], mine("left", raw[y0:y1, x0])
    return face_pairs(above, below, left, right)


def relabel_block(item: tuple[Block, np.ndarray], job: BlockJob) -> int:
    """Write the block's final instance labels (``mapping``: local label -> final label)."""
    block, mapping = item
    y0, y1, x0, x1 = block.core
    raw = np.asarray(_open(job.arrays["objects"])[y0:y1, x0:x1]).astype(np.int64)
    local = np.where(raw > 0, raw - block.index * job.capacity, 0)
    target = _open(job.arrays["instances"])
    target[y0:y1, x0:x1] = mapping[local].astype(target.dtype)
    return int(block.index)


def measure_block(item: tuple[Block, np.ndarray, tuple, tuple | None, str], job: BlockJob) -> dict[str, np.ndarray]:
    """Measure the objects this block owns (their boxes start in it), on a window holding all of them."""
    block, chosen, window, pixel_size, unit = item
    y0, y1, x0, x1 = window
    instances = np.asarray(_open(job.arrays["instances"])[y0:y1, x0:x1])
    intensity = read_region(job.source, window, job.missing_chunks)
    return measure_chosen(instances, chosen, intensity, (y0, x0), pixel_size, unit)


def default_threads(n_workers: int) -> int:
    """PyTorch threads per worker so that the workers together use the machine's cores once."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, n_workers))


__all__ = ["BlockFailure", "BlockJob", "block_faces", "default_threads", "load_objects", "measure_block",
           "model_loads", "predict_block", "relabel_block", "worker_device", "worker_model"]
