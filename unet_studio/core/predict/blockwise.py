"""Blockwise prediction of images bigger than memory, on a Dask cluster or in this process.

:func:`iter_blockwise` cuts a (C, Y, X) image (a zarr array, an :class:`~unet_studio.core.io.ZarrImage`,
anything sliceable) into blocks (:mod:`~unet_studio.core.predict.blockwise_plan`), predicts each with the
overlap-tile code on the block plus real context (so the result equals a single-process
:func:`~unet_studio.core.predict.predict_probabilities` of the whole image), and writes labels,
probabilities and instances as OME-Zarr images (the chunks are the blocks) and a measurements CSV.
Instances crossing block borders are joined into one object (:mod:`~unet_studio.core.predict.blockwise_merge`).

The passes run on a ``distributed.Client`` (``client.map`` with ``retries``: a block whose worker died is
run again) or, with ``client=None``, one block after the other in this process, with the same task
functions (:mod:`~unet_studio.core.predict.blockwise_tasks`). Memory stays that of one block per worker.

Everything is written into a work folder beside the outputs (``.NAME.blockwise``); each finished block
records itself there, so a run that was killed or stopped continues where it was (finished blocks are
skipped), and the outputs move into place only when every block is done: no half-written chunk is ever
visible as a finished output. A block that cannot be read (a missing or corrupt chunk) is reported and the
others go on; the outputs are then not published and the next run retries only the failed blocks.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import InferConfig
from ..errors import ImageWriteError
from ..model import read_model_info
from .blockwise_merge import merge_objects
from .blockwise_plan import aligned_block_size, block_margin, image_shape, plan_blocks
from .blockwise_tasks import (
    BlockFailure,
    BlockJob,
    block_faces,
    load_objects,
    measure_block,
    predict_block,
    relabel_block,
)
from .instances import resolve_instance_mode
from .postprocess import InstanceConfig, foreground_classes, label_dtype, table_to_csv

log = logging.getLogger(__name__)

_PUBLISHING = "publishing"
OUTPUT_KINDS = {"labels": "labels", "probabilities": "probabilities", "instances": "labels"}
"""The zarr outputs and how their pyramids are downsampled (``build_pyramid``'s kind)."""


@dataclass(frozen=True)
class BlockwiseConfig:
    """How to cut and predict: ``block_size`` (pixels, rounded up to the pooling grid), the tiling
    (``infer``), how objects are made (as :class:`~unet_studio.core.predict.ExportConfig`), ``retries`` of a
    block whose worker died, ``missing_chunks`` (``"error"`` or ``"fill"``), the workers' ``device``
    (``auto``: one GPU per worker where there are GPUs) and PyTorch threads per worker."""

    block_size: int = 2048
    infer: InferConfig = field(default_factory=InferConfig)
    foreground: tuple[int, ...] = ()
    instance: InstanceConfig = field(default_factory=InstanceConfig)
    instance_mode: str = "auto"
    retries: int = 2
    missing_chunks: str = "error"
    device: str = "auto"
    torch_threads: int | None = None


@dataclass
class BlockwiseProgress:
    """One step of :func:`iter_blockwise`: ``stage`` (predict, merge, relabel, measure, pyramid, done) and its
    ``done``/``total`` tasks; ``skipped`` blocks finished by an earlier run; ``failures`` one line per failed
    block; ``outputs`` (the files written) on the last item of a run where every block succeeded."""

    stage: str
    done: int
    total: int
    skipped: int = 0
    failures: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    outputs: dict[str, Path] | None = None


class _InProcess:
    """Runs the tasks one after the other here (the "one process" way: no cluster, same task functions)."""

    def map(self, function: Callable, items: list, job: BlockJob) -> Iterator[tuple[Any, Any, BaseException | None]]:
        for item in items:
            try:
                yield item, function(item, job), None
            except Exception as exc:  # noqa: BLE001 - reported per block; the others go on
                yield item, None, exc


class _OnCluster:
    """Runs the tasks on a ``distributed.Client``; a stop (or Ctrl-C) cancels what has not run."""

    def __init__(self, client: Any, retries: int) -> None:
        self.client = client
        self.retries = retries

    def map(self, function: Callable, items: list, job: BlockJob) -> Iterator[tuple[Any, Any, BaseException | None]]:
        from distributed import as_completed

        if not items:
            return
        # the job goes inside each task (a few kB), not scattered: scattered data dies with its workers
        futures = self.client.map(function, items, job=job, retries=self.retries, pure=False)
        by_key = {future.key: item for future, item in zip(futures, items)}
        try:
            for future in as_completed(futures):
                if future.status == "error":
                    yield by_key[future.key], None, future.exception()
                else:
                    yield by_key[future.key], future.result(), None
        finally:  # a stop (Ctrl-C, an error) cancels the blocks not yet run; done ones are only released
            self.client.cancel([future for future in futures if not future.done()])


def work_folder(target: Path) -> Path:
    """Where a run keeps its unfinished outputs and finished-block records, beside its first output."""
    return target.parent / f".{target.name}.blockwise"


def _fingerprint(source: Any, model_dir: Path, shape, targets: dict[str, Path], config: BlockwiseConfig,
                 prepare: Any) -> str:
    stamps = sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in model_dir.iterdir() if p.is_file())
    where = str(getattr(source, "path", None) or getattr(source, "store", None) or type(source).__name__)
    return json.dumps({"source": where, "shape": list(shape), "model": str(model_dir.resolve()), "stamps": stamps,
                       "targets": {k: str(v) for k, v in targets.items()}, "config": repr(config),
                       "prepare": repr(prepare)}, sort_keys=True)


def _prepare_work(work: Path, fingerprint: str) -> bool:
    """Make the work folder; ``True`` when it continues an earlier run of the same job."""
    record = work / "run.json"
    if record.is_file() and record.read_text(encoding="utf-8") == fingerprint:
        return True
    if work.exists():
        log.info("%s belongs to another run; starting over", work)
        shutil.rmtree(work)
    from ..io import write_text

    (work / "blocks").mkdir(parents=True)
    write_text(record, fingerprint)
    return False


def _create_arrays(work: Path, targets: dict[str, Path], shape, n_classes: int, class_names, dtype, block: int,
                   capacity_max: int, pixel_size, resume: bool) -> dict[str, str]:
    """The work folder's level-0 arrays (created unless continuing), as paths the workers open."""
    from ..io import create_ome_zarr

    _, height, width = shape
    specs = {"labels": ((height, width), dtype, "yx"),
             "probabilities": ((n_classes, height, width), np.float32, "cyx"),
             "instances": ((height, width), np.uint32, "yx")}
    paths = {}
    wanted = set(targets) | ({"instances"} if "measurements" in targets else set())
    for key, (full, kind_dtype, axes) in specs.items():
        if key in wanted:
            folder = work / (targets[key].name if key in targets else f"{key}.ome.zarr")
            chunks = (n_classes, block, block) if axes == "cyx" else (block, block)
            if not resume:
                create_ome_zarr(folder, full, kind_dtype, chunks, axes, pixel_size,
                                list(class_names) if axes == "cyx" else None, overwrite=True)
            paths[key] = str(folder / "0")
    if "instances" in targets or "measurements" in targets:
        import zarr

        folder = work / "objects.zarr"
        if not resume:
            dtype_raw = np.uint32 if capacity_max < 2**32 else np.uint64
            zarr.create_array(str(folder), shape=(height, width), chunks=(block, block), dtype=dtype_raw,
                              fill_value=0, overwrite=True)
        paths["objects"] = str(folder)
    return paths


def _refuse_existing(targets: dict[str, Path], overwrite: bool) -> None:
    from ..io import holds_data

    held = [str(path) for path in targets.values() if holds_data(path)]
    if held and not overwrite:
        raise ImageWriteError(f"{', '.join(held)} already hold{'s' * (len(held) == 1)} data: choose another "
                              "--out or pass --overwrite")


def iter_blockwise(source: Any, model_dir: str | os.PathLike, targets: dict[str, Path],
                   config: BlockwiseConfig = BlockwiseConfig(), client: Any = None,
                   prepare: Callable[[np.ndarray], np.ndarray] | None = None, pixel_size=None, unit: str = "",
                   overwrite: bool = False, predictor: Callable | None = None) -> Iterator[BlockwiseProgress]:
    """Predict ``source`` block by block and write ``targets``, yielding progress.

    Parameters
    ----------
    source : array-like or ZarrImage
        The raw image, (C, Y, X) or (Y, X), read one block window at a time.
    model_dir : path
        The model folder (each worker loads it once).
    targets : dict
        ``{"labels" | "probabilities" | "instances": NAME.ome.zarr, "measurements": NAME.csv}``.
    config : BlockwiseConfig
        Blocks, tiling, objects, retries.
    client : distributed.Client, optional
        Where the blocks run; ``None``: in this process, one after the other.
    prepare : callable, optional
        Raw window -> network input (e.g. a :class:`~unet_studio.core.predict.blockwise_plan.PercentileScaler`
        with limits from the whole image); picklable for a cluster. ``None``: cast to float32.
    pixel_size, unit : optional
        Calibration for the outputs' metadata (micrometres) and the measurements.
    overwrite : bool
        Replace outputs that exist; otherwise they are refused before any work.
    predictor : callable, optional
        Replaces the network's forward pass (see :data:`~unet_studio.core.predict.Predictor`).

    Yields
    ------
    BlockwiseProgress
        After each finished task; the last one has ``outputs`` (or ``failures``, outputs not published).
    """
    start = time.perf_counter()
    model_dir = Path(model_dir)
    info, _ = read_model_info(model_dir)
    mc = info.model_config
    shape = image_shape(source)
    if shape[0] != mc.in_channels:
        from ..errors import InferenceError

        raise InferenceError(f"the image has {shape[0]} channel{'s' * (shape[0] != 1)} but the model expects "
                             f"{mc.in_channels}; use a model trained on images like this one")
    targets = {key: Path(path) for key, path in targets.items()}
    work = work_folder(next(iter(targets.values())))
    fingerprint = _fingerprint(source, model_dir, shape, targets, config, prepare)
    if (work / _PUBLISHING).is_file() and (work / "run.json").read_text(encoding="utf-8") == fingerprint:
        yield from _move_into_place(targets, work, 0, start)  # a run stopped while moving its outputs
        return
    _refuse_existing(targets, overwrite)
    block = aligned_block_size(config.block_size, mc)
    blocks = plan_blocks(shape[1:], block, block_margin(mc, config.infer))
    resume = _prepare_work(work, fingerprint)
    arrays = _create_arrays(work, targets, shape, mc.n_classes, info.class_names, label_dtype(info.class_values),
                            block, len(blocks) * block * block, pixel_size, resume)
    job = BlockJob(source, str(model_dir), str(work), arrays, config.infer, tuple(info.class_values), block * block,
                   prepare, tuple(foreground_classes(info.class_values, info.class_names, config.foreground)),
                   resolve_instance_mode(config.instance_mode, info.class_names, info.extra), config.instance,
                   config.missing_chunks, config.device, config.torch_threads, predictor)
    runner = _OnCluster(client, config.retries) if client is not None else _InProcess()
    todo = [b for b in blocks if not job.done_file(b).is_file()]
    skipped = len(blocks) - len(todo)
    if skipped:
        log.info("continuing %s: %d of %d blocks were finished", work, skipped, len(blocks))
    failures: list[str] = []
    yield BlockwiseProgress("predict", skipped, len(blocks), skipped, elapsed_s=time.perf_counter() - start)
    for done, (item, result, error) in enumerate(runner.map(predict_block, todo, job), start=skipped + 1):
        if error is not None:
            failures.append(f"{item.describe()}: {type(error).__name__}: {' '.join(str(error).split())}")
        elif isinstance(result, BlockFailure):
            failures.append(result.message)
        yield BlockwiseProgress("predict", done, len(blocks), skipped, list(failures), time.perf_counter() - start)
    if failures:
        yield BlockwiseProgress("failed", len(blocks) - len(failures), len(blocks), skipped, failures,
                                time.perf_counter() - start)
        return
    for step in _objects(runner, job, blocks, block, config, pixel_size, unit, targets, work):
        step.skipped, step.elapsed_s = skipped, time.perf_counter() - start
        yield step
    yield from _publish(targets, work, skipped, start)


def _objects(runner, job: BlockJob, blocks, block: int, config: BlockwiseConfig, pixel_size, unit: str,
             targets: dict[str, Path], work: Path) -> Iterator[BlockwiseProgress]:
    """The merge of objects across blocks, their final labels and their measurements (see blockwise_merge)."""
    if "objects" not in job.arrays:
        return
    pairs = []
    for done, (item, result, error) in enumerate(runner.map(block_faces, blocks, job), start=1):
        if error is not None:
            raise error
        pairs.append(result)
        yield BlockwiseProgress("merge", done, len(blocks))
    columns = max(b.col for b in blocks) + 1
    merged = merge_objects(blocks, {b.index: load_objects(job, b) for b in blocks}, np.concatenate(pairs),
                           job.capacity, block, columns, config.instance.min_size)
    items = [(b, merged.mappings[b.index]) for b in blocks]
    for done, (_, _, error) in enumerate(runner.map(relabel_block, items, job), start=1):
        if error is not None:
            raise error
        yield BlockwiseProgress("relabel", done, len(blocks))
    if "measurements" not in targets:
        return
    owned = [(b,) + merged.measured_by(b.index) for b in blocks]
    items = [(b, chosen, window, pixel_size, unit) for b, chosen, window in owned if window is not None]
    tables = []
    for done, (_, result, error) in enumerate(runner.map(measure_block, items, job), start=1):
        if error is not None:
            raise error
        tables.append(result)
        yield BlockwiseProgress("measure", done, len(items))
    _write_csv(work / targets["measurements"].name, tables, pixel_size, unit)


def _write_csv(path: Path, tables: list[dict[str, np.ndarray]], pixel_size, unit: str) -> None:
    from ..io import write_text
    from .postprocess import measure

    if not tables:
        tables = [measure(np.zeros((1, 1), np.int32), None, pixel_size, unit)]
    table = {key: np.concatenate([t[key] for t in tables]) for key in tables[0]}
    order = np.argsort(table["label"], kind="stable")
    write_text(path, table_to_csv({key: values[order] for key, values in table.items()}))


def _publish(targets: dict[str, Path], work: Path, skipped: int, start: float) -> Iterator[BlockwiseProgress]:
    """Pyramids, then each output moved into place (replacing an old one), then the work folder removed."""
    from ..io import build_pyramid

    zarr_targets = [key for key in targets if key in OUTPUT_KINDS]
    for done, key in enumerate(zarr_targets, start=1):
        build_pyramid(work / targets[key].name, OUTPUT_KINDS[key])
        yield BlockwiseProgress("pyramid", done, len(zarr_targets), skipped, elapsed_s=time.perf_counter() - start)
    yield from _move_into_place(targets, work, skipped, start)


def _move_into_place(targets: dict[str, Path], work: Path, skipped: int, start: float) -> Iterator[BlockwiseProgress]:
    """Each finished output renamed into place (replacing an old one), then the work folder removed. The
    marker written first lets a run stopped between two renames finish them (its outputs are all complete)."""
    from ..io import write_text

    write_text(work / _PUBLISHING, "moving the outputs into place")
    for target in targets.values():
        if not (work / target.name).exists():
            continue  # moved by the run that was stopped
        target.parent.mkdir(parents=True, exist_ok=True)
        old = target.parent / f".{target.name}.old"
        shutil.rmtree(old, ignore_errors=True)  # left by a run stopped here
        if target.exists() or target.is_symlink():
            os.replace(target, old)
        os.replace(work / target.name, target)
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        elif old.exists():
            old.unlink()
    shutil.rmtree(work, ignore_errors=True)
    yield BlockwiseProgress("done", 1, 1, skipped, elapsed_s=time.perf_counter() - start, outputs=dict(targets))


def predict_blockwise(source: Any, model_dir: str | os.PathLike, targets: dict[str, Path],
                      config: BlockwiseConfig = BlockwiseConfig(), client: Any = None, **options) -> BlockwiseProgress:
    """Run :func:`iter_blockwise` to the end and return its last item (``outputs`` or ``failures``)."""
    last = None
    for last in iter_blockwise(source, model_dir, targets, config, client, **options):
        pass
    assert last is not None
    return last


__all__ = ["BlockwiseConfig", "BlockwiseProgress", "OUTPUT_KINDS", "iter_blockwise", "predict_blockwise",
           "work_folder"]
