"""``unet-studio predict --dask [ADDRESS]``: blockwise prediction of big images on a Dask cluster.

Without ADDRESS a ``distributed.LocalCluster`` sized to this machine (one worker per GPU, else one per two
CPU cores); with ``tcp://host:8786`` the scheduler there (e.g. one started by dask-jobqueue on Slurm). The
outputs are OME-Zarr (as ``--format zarr``), written by :func:`unet_studio.core.predict.iter_blockwise`:
a stopped or killed run continues where it was when started again, Ctrl-C cancels the cluster's work.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from ..core.io import available_ram
from ..core.predict import blockwise_scaler, close_client, open_client
from .checks import check_int, shown
from .progress import ProgressBar

PROG = "unet-studio predict"
STAGES = {"predict": "predicting blocks", "merge": "joining objects across blocks", "relabel": "numbering objects",
          "measure": "measuring objects", "pyramid": "building pyramids"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The Dask options of ``predict``."""
    parser.add_argument("--dask", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="predict big images block by block on Dask: on a LocalCluster sized to this machine, "
                        "or on the scheduler at ADDRESS (tcp://host:8786); outputs are OME-Zarr")
    parser.add_argument("--block-size", type=int, default=None, metavar="PX",
                        help="predict block by block, blocks of PX pixels (also the output chunks; default 2048 "
                        "with --dask): without --dask in this process, so memory stays that of one block; "
                        "outputs are OME-Zarr. Images whose slice does not fit in memory go block by block anyway")


#: Block side when none is given (with --dask, or for an image too big for memory).
DEFAULT_BLOCK = 2048


def needs_blocks(path: Path, axes: str | None, n_classes: int) -> bool:
    """Whether predicting ``path`` whole would need more than half the memory available now (its one slice,
    the network's input and the probabilities): such an image is predicted block by block instead of
    being refused. Only single-slice images stored to be read by region (OME-Zarr, tiled TIFF) qualify, and
    only when the zarr extras are installed; others keep the refusal that says what to do."""
    from ..core.io import read_image

    try:
        import ome_zarr  # noqa: F401
        import zarr  # noqa: F401
    except ImportError:
        return False
    try:
        with read_image(path, axes=axes) as stack:
            if len(stack) != 1:
                return False
            nbytes = stack.slice_nbytes
            pixels = nbytes // max(1, stack.dtype.itemsize)
    except Exception:  # noqa: BLE001 - the ordinary path reports what is wrong with the file
        return False
    need = nbytes + pixels * 4 * (2 + 2 * n_classes)
    if need <= available_ram() // 2:
        return False
    return _by_region(path, axes)


def _by_region(path: Path, axes: str | None) -> bool:
    """Whether ``path`` is stored to be read by region: an OME-Zarr (or zarr) folder, or a tiled TIFF."""
    from ..core.io import is_zarr_path

    try:
        if not is_zarr_path(path):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                if not tif.pages[0].is_tiled:
                    return False
        from ..core.predict import ImageRef

        ImageRef(str(path), axes).open()
    except Exception:  # noqa: BLE001 - not readable by region: the ordinary path says what is wrong
        return False
    return True


def _config(args: argparse.Namespace, predictor, workers: int | None):
    from ..core.predict import BlockwiseConfig, default_threads

    export = predictor.export
    return BlockwiseConfig(block_size=args.block_size or DEFAULT_BLOCK, infer=predictor.infer, foreground=export.foreground,
                           instance=export.instance, instance_mode=export.instance_mode,
                           missing_chunks=args.missing_chunks, device=args.device,
                           torch_threads=default_threads(workers) if workers else None)


def _run_image(client, config, predictor, model_dir: str, path: Path, name: str,
               overwrite: bool) -> tuple[dict | None, list[str]]:
    from ..core.predict import ImageRef, iter_blockwise, output_paths

    # the workers open the image themselves (an open TIFF cannot be sent to them)
    source = ImageRef(str(path), predictor.axes, predictor.missing_chunks)
    image = source.open()
    targets = output_paths(predictor.out, name, predictor.export)
    steps = iter_blockwise(source, model_dir, targets, config, client,
                           prepare=blockwise_scaler(predictor.info, image), pixel_size=image.pixel_size,
                           unit="µm" if image.pixel_size else "", overwrite=overwrite)
    bar, stage = None, None
    try:
        for step in steps:
            if step.stage != stage and step.stage in STAGES:
                if bar is not None:
                    bar.close()
                stage, bar = step.stage, ProgressBar(f"{shown(path.name)}: {STAGES[step.stage]}")
                if step.skipped and step.stage == "predict":
                    bar.message(f"{PROG}: continuing an earlier run: {step.skipped} block(s) already done")
            if bar is not None and step.stage in STAGES:
                bar.update(step.done, step.total)
            if step.stage in ("done", "failed"):
                return step.outputs, step.failures
    finally:
        steps.close()  # on Ctrl-C: cancels the blocks not yet run
        if bar is not None:
            bar.close()
    return None, ["the run ended early"]


def run(args: argparse.Namespace, predictor, plan: list[tuple[Path, str]], in_process: bool = False) -> int:
    """Predict every input of ``plan`` block by block, on Dask (``--dask``) or, ``in_process``, in this
    process one block after the other; 0 when all are complete, 1 when blocks failed."""
    import dataclasses

    from ..resources import model_folder

    if args.block_size is not None:
        check_int("--block-size", args.block_size, 64, 1 << 16)
    predictor.export = dataclasses.replace(predictor.export, format="zarr")  # blockwise outputs are OME-Zarr
    model_dir = str(model_folder(args.model))  # the workers load it from there, once each
    client, cluster = (None, None) if in_process else open_client(args.dask)
    failed_blocks = 0
    current = None
    try:
        if in_process:
            print(f"{PROG}: block by block in this process (blocks of {args.block_size or DEFAULT_BLOCK} px); "
                  "outputs are OME-Zarr", file=sys.stderr)
            config = _config(args, predictor, None)
        else:
            where = f"a local cluster of {len(cluster.workers)} worker(s)" if cluster is not None else args.dask
            print(f"{PROG}: on {where} (dashboard {client.dashboard_link})", file=sys.stderr)
            config = _config(args, predictor, len(cluster.workers) if cluster is not None else None)
        for path, name in plan:
            current = path
            outputs, failures = _run_image(client, config, predictor, model_dir, path, name, args.overwrite)
            for line in failures[:20]:
                print(f"{PROG}: FAILED {line}", file=sys.stderr)
            if failures:
                failed_blocks += len(failures)
                print(f"{PROG}: {shown(path.name)}: {len(failures)} block(s) failed; the finished blocks are kept, "
                      "run the same command again to retry only the failed ones", file=sys.stderr)
                continue
            print(f"{shown(path.name)}: " + ", ".join(shown(p.name) for p in (outputs or {}).values()))
    except KeyboardInterrupt:
        if current is not None:
            print(f"{PROG}: stopped {shown(current.name)}; its finished blocks are kept in {predictor.out}, run the "
                  "same command again to continue", file=sys.stderr)
        raise
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                close_client(client, cluster)
    if failed_blocks:
        print(f"{PROG}: {failed_blocks} block(s) failed", file=sys.stderr)
        return 1
    return 0


__all__ = ["DEFAULT_BLOCK", "add_arguments", "needs_blocks", "run"]
