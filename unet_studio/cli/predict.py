"""``unet-studio predict``: label images (and probabilities, instances, measurements) with a trained model.

For each input ``NAME.ext`` it writes into ``--out``:

- ``NAME_labels.tif``: the most probable class per pixel, in the class values the model was trained with
  ((Y, X), or (S, Y, X) for a stack);
- with ``--probabilities``: ``NAME_probabilities.tif``, float32 softmax, (K, Y, X) or (S, K, Y, X);
- with ``--instances``: ``NAME_instances.tif``, one number per object (touching objects split by a
  watershed unless ``--no-split``: seeded by the object interiors for a model trained with
  ``train --instances``, by the maxima of the foreground's distance transform otherwise; ``--instance-mode``
  chooses), per slice;
- with ``--measure``: ``NAME_measurements.csv``, one row per object (with a ``slice`` column for stacks and
  physical units when the image is calibrated).

OME-Zarr: an input may be an OME-Zarr image folder (``NAME.ome.zarr``, NGFF 0.4/0.5, read lazily slice by
slice; a plain zarr array needs ``--axes``). With ``--format zarr`` (the default when an input is OME-Zarr,
and implied by ``--out NAME.ome.zarr`` for one image, whose labels then go to that very folder) the outputs
are OME-Zarr images ``NAME_labels.ome.zarr`` (``_probabilities``, ``_instances``) with a multiscale pyramid
(labels and instances downsampled by the mode, never averaged), written into a temporary folder beside the
target and renamed when done (:mod:`.predict_format`).

The outputs are written by :func:`unet_studio.core.predict.export_image`, as the application's File >
Export writes them: stacks slice by slice through memory-mapped TIFFs, every file atomically (a failure or an
interrupt leaves no partial or temporary file). A file that cannot be read (or does not fit the model) is
reported in one line and the others go on; the exit status is 1 if any failed.

Nothing the run did not create is replaced unless ``--overwrite`` says so, and outputs never become inputs:
in a folder, ``NAME_labels.tif`` (``_probabilities``, ``_instances``) beside an image ``NAME`` is skipped.
Inputs whose names differ only in their extension (``a.tif``, ``a.png``) get outputs named after both
(``a_tif_labels.tif``, ``a_png_labels.tif``).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import sys
import time
from pathlib import Path

from ..core.config import InferConfig
from ..core.device import configure_cpu_threads, describe_device, select_device
from ..core.errors import ConfigError, ImageReadError, UNetStudioError
from ..core.io import SUPPORTED_SUFFIXES, check_writable, is_zarr_path, list_images, read_image
from ..core.model import load_model
from ..resources import model_folder
from ..core.predict import (
    INSTANCE_MODES,
    OUTPUT_SUFFIXES,
    ExportConfig,
    InstanceConfig,
    export_image,
    foreground_classes,
    output_paths,
    resolve_instance_mode,
    smallest_tile,
)
from ..core.progress import format_duration
from .checks import check_float, check_int, parse_floats, parse_ints, shown, shown_list
from . import predict_format
from . import predict_dask
from .predict_format import choose_output, input_stem, input_suffix
from .progress import ProgressBar

PROG = "unet-studio predict"
MAX_TILE = 1 << 16  # far above any tile that fits in memory; a larger value is a typo
MAX_BATCH = 4096


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="MODEL_DIR", help="model folder written by 'unet-studio train', or nuclei (the bundled starting model)")
    parser.add_argument("--images", required=True, metavar="DIR_OR_FILE", help="an image file or a folder of images")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed), or NAME.ome.zarr "
                        "for the labels of one image as OME-Zarr")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace output files that are already in --out (default: refuse, touching nothing)")
    parser.add_argument("--probabilities", action="store_true", help="also write NAME_probabilities.tif (float32; .ome.zarr with --format zarr)")
    parser.add_argument("--instances", action="store_true", help="also write NAME_instances.tif (one number per object; .ome.zarr with --format zarr)")
    parser.add_argument("--measure", action="store_true", help="also write NAME_measurements.csv (one row per object)")
    parser.add_argument("--tile-size", type=int, metavar="N", help="largest tile side in pixels (default: from free memory)")
    parser.add_argument("--overlap", type=float, metavar="F", help="blended overlap between tiles, fraction (default: 0.125 where tiles can differ, else 0)")
    parser.add_argument("--batch-size", type=int, metavar="N", help="tiles per forward pass (default: from free memory)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="compute device (default auto)")
    parser.add_argument("--thresholds", metavar="T1,T2,...",
                        help="per-class probability thresholds, one per class (0 = none; all 0 = plain argmax); "
                             "default: the thresholds the model chose on its validation data, if any")
    parser.add_argument("--tta", action="store_true",
                        help="test-time augmentation: average over the 8 flips/rotations (8x slower, a little more accurate)")
    parser.add_argument("--foreground", metavar="V1,V2,...",
                        help="class values that make up objects for --instances/--measure (default: every class "
                        "but the background: the class named 'background', else value 0, else the first)")
    parser.add_argument("--min-size", type=int, default=10, metavar="PX", help="drop objects smaller than PX pixels (default 10)")
    parser.add_argument("--no-split", action="store_true", help="objects are connected components (no watershed splitting)")
    parser.add_argument("--instance-mode", choices=("auto",) + tuple(INSTANCE_MODES), default="auto", metavar="MODE",
                        help="how touching objects are split: auto (default: as the model was trained), three_class "
                        "(seeds from the interior class of a model trained with 'train --instances'), or distance "
                        "(seeds from the maxima of the foreground's distance transform)")
    predict_format.add_arguments(parser)
    predict_dask.add_arguments(parser)  # --dask [ADDRESS], --block-size


def check_args(args: argparse.Namespace) -> None:
    """Refuse numeric options that are not finite or out of range, naming the option (before any work)."""
    check_int("--tile-size", args.tile_size, 8, MAX_TILE)
    check_float("--overlap", args.overlap, 0.0, 1.0, high_open=True)
    check_int("--batch-size", args.batch_size, 1, MAX_BATCH)
    check_int("--min-size", args.min_size, 0, 2**31 - 1)
    parse_floats("--thresholds", args.thresholds, 0.0, 1.0)
    parse_ints("--foreground", args.foreground, 0, 2**32 - 1)


# ------------------------------------------------------------------------------------ inputs and outputs


def _looks_like_output(path: Path, stems: set[str]) -> bool:
    """``NAME_labels.tif`` (or another output) beside an image ``NAME``: an output of a run, not an input."""
    stem = input_stem(path).casefold()
    return any(stem.endswith(suffix.split(".")[0]) and stem[: -len(suffix.split(".")[0])] in stems
               for suffix in OUTPUT_SUFFIXES.values())


def find_inputs(images: Path) -> tuple[list[Path], list[Path]]:
    """The images to predict and the files skipped because they are outputs of a prediction."""
    if images.is_file() or is_zarr_path(images):  # an OME-Zarr image is a folder, but one image
        return [images], []
    if not images.exists():
        raise ImageReadError(f"'{images}' does not exist: give an image file or a folder of images")
    found = list_images(images)
    stems = {input_stem(p).casefold() for p in found}
    skipped = [p for p in found if _looks_like_output(p, stems)]
    inputs = [p for p in found if p not in skipped]
    if not inputs:
        raise ImageReadError(f"no images in '{images}' (supported: {', '.join(SUPPORTED_SUFFIXES)})"
                             + (f"; {len(skipped)} file(s) there are outputs of a prediction" if skipped else ""))
    return inputs, skipped


def plan_outputs(inputs: list[Path], out: Path, config: ExportConfig, overwrite: bool,
                 name: str | None = None) -> list[tuple[Path, str]]:
    """(input, output base name) per input, after refusing clashes and files the run would replace.

    Names differing only in the extension get the extension in their outputs' name; outputs that would still
    share a file (names differing only in case, which some file systems do not tell apart) are refused, as
    are outputs that would replace an input, or an existing file unless ``overwrite``. ``name``: the one
    input's outputs are named so (``--out NAME.ome.zarr``).
    """
    by_stem: dict[str, list[Path]] = {}
    for path in inputs:
        by_stem.setdefault(input_stem(path).casefold(), []).append(path)
    plan = [(p, input_stem(p) if len(by_stem[input_stem(p).casefold()]) == 1 else f"{input_stem(p)}_{input_suffix(p)}")
            for p in inputs]
    if name:
        plan = [(inputs[0], name)]
    owner: dict[str, Path] = {}
    sources = {p.resolve() for p in inputs}
    existing: list[str] = []
    for path, name in plan:
        for target in output_paths(out, name, config).values():
            key = target.name.casefold()
            if key in owner:
                raise ConfigError(f"{shown(owner[key].name)} and {shown(path.name)} would both write "
                                  f"{shown(target.name)}; rename one of them or predict them into different --out folders")
            owner[key] = path
            if target.resolve() in sources:
                raise ConfigError(f"{shown(target.name)} is an input of this run and would be replaced by the "
                                  f"prediction of {shown(path.name)}; choose another --out")
            if (target.exists() or target.is_symlink()) and not overwrite:
                existing.append(target.name)
    if existing:
        raise ConfigError(f"--out {out} already holds {shown_list(existing)}, which this run would replace; "
                          "pass --overwrite to replace them, or choose another --out")
    return plan


# ------------------------------------------------------------------------------------------ the run


class _Predictor:
    """Everything fixed for the run: model, settings, output choices."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.device = select_device(args.device)
        self.model, self.info = load_model(model_folder(args.model), self.device)  # nuclei: the bundled model
        n_classes = self.info.model_config.n_classes
        thresholds = parse_floats("--thresholds", args.thresholds, 0.0, 1.0)
        self.note = ""
        if thresholds and len(thresholds) != n_classes:
            raise ConfigError(f"--thresholds needs {n_classes} values (one per class: "
                              f"{', '.join(self.info.class_names)}), got {len(thresholds)}")
        if args.thresholds is None and self.info.thresholds:
            thresholds = tuple(self.info.thresholds)  # calibrated on the validation data when it was trained
            chosen = ", ".join(f"{name} {t:.2f}" for name, t in zip(self.info.class_names, thresholds) if t > 0)
            self.note = (f"using the model's thresholds, chosen on its validation data: {chosen} "
                         "(--thresholds 0,0 for plain argmax)")
        changes = {"device": "auto", "thresholds": thresholds, "tta": args.tta}
        for option in ("tile_size", "overlap", "batch_size"):
            if getattr(args, option) is not None:
                changes[option] = getattr(args, option)
        self.infer = InferConfig(**changes)
        minimum = smallest_tile(self.info.model_config, self.infer)
        if args.tile_size is not None and args.tile_size < minimum:
            raise ConfigError(f"--tile-size {args.tile_size} is too small for this model; use at least {minimum}")
        foreground = parse_ints("--foreground", args.foreground, 0, 2**32 - 1)
        try:
            foreground_classes(self.info.class_values, self.info.class_names, foreground)
        except ConfigError as exc:
            raise ConfigError(f"--foreground: {exc}") from None
        try:
            resolve_instance_mode(args.instance_mode, self.info.class_names, self.info.extra)
        except ConfigError as exc:
            raise ConfigError(f"--instance-mode: {exc}") from None
        self.export = ExportConfig(
            labels=True, probabilities=args.probabilities, instances=args.instances, measurements=args.measure,
            foreground=foreground,
            instance=InstanceConfig(method="components" if args.no_split else "watershed", min_size=args.min_size),
            instance_mode=args.instance_mode)
        self.out = Path(args.out)
        self.axes, self.missing_chunks = args.axes, args.missing_chunks
        self.warnings: list[str] = []  # about the last image: NaN pixels, a constant image

    def run_one(self, path: Path, name: str, bar: ProgressBar) -> dict[str, Path]:
        with read_image(path, axes=self.axes, missing_chunks=self.missing_chunks) as stack, contextlib.closing(
                export_image(self.model, self.info, stack, self.out, name, self.export, self.infer)) as steps:
            n_slices = len(stack)
            for step in steps:
                if step.outputs is not None:
                    self.warnings = step.warnings
                    return step.outputs
                text = f"slice {step.slice_index + 1}/{n_slices}, " if n_slices > 1 else ""
                bar.update(step.slice_index * step.tiles_total + step.tiles_done, step.tiles_total * n_slices,
                           f"{text}{format_duration(step.elapsed_s)} elapsed, {format_duration(step.eta_s)} left")
        raise AssertionError("export_image ended without naming its outputs")


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def run(args: argparse.Namespace) -> int:
    check_args(args)
    configure_cpu_threads()
    predictor = _Predictor(args)
    inputs, skipped = find_inputs(Path(args.images))
    choice = choose_output(args, inputs)
    predictor.out = choice.folder
    predictor.export = dataclasses.replace(predictor.export, format=choice.format, labels_as_name=bool(choice.name))
    if args.dask is not None:  # blockwise on Dask: its outputs are OME-Zarr
        predictor.export = dataclasses.replace(predictor.export, format="zarr")
    plan = plan_outputs(inputs, predictor.out, predictor.export, args.overwrite, name=choice.name)
    check_writable(predictor.out)  # a read-only or impossible --out: say so before any work
    if args.dask is not None:
        return predict_dask.run(args, predictor, plan)
    if args.block_size is not None:  # block by block in this process
        return predict_dask.run(args, predictor, plan, in_process=True)
    big = [(path, name) for path, name in plan
           if predict_dask.needs_blocks(path, predictor.axes, predictor.info.model_config.n_classes)]
    if big:
        print(f"{PROG}: {shown_list([p.name for p, _ in big])}: too big to predict whole in the memory "
              "available; predicting block by block (outputs OME-Zarr)", file=sys.stderr)
        plan = [item for item in plan if item not in big]
        code = predict_dask.run(args, copy.copy(predictor), big, in_process=True)  # its outputs: OME-Zarr
        if not plan:
            return code
        return max(code, _run_whole(args, predictor, plan, skipped))
    return _run_whole(args, predictor, plan, skipped)


def _run_whole(args: argparse.Namespace, predictor: _Predictor, plan: list, skipped: list) -> int:
    """Predict each image of ``plan`` whole (slice by slice), one line per image, and a summary."""
    device = describe_device(predictor.device)
    if skipped:
        print(f"{PROG}: skipped {len(skipped)} file(s) that are outputs of a prediction: "
              f"{shown_list([p.name for p in skipped])}", file=sys.stderr)
    # One image: its failure is the command's error, one line. Several: one line per failed image, the
    # others go on, and a summary.
    single = len(plan) == 1
    if not single:
        print(f"{PROG}: {len(plan)} images on {device}", file=sys.stderr)
    failed: list[Path] = []
    start = time.perf_counter()
    for number, (path, name) in enumerate(plan, start=1):
        bar = ProgressBar(shown(path.name) if single else f"[{number}/{len(plan)}] {shown(path.name)}")
        try:
            written = predictor.run_one(path, name, bar)
        except UNetStudioError as exc:
            bar.close()
            if single:
                raise
            failed.append(path)
            print(f"{PROG}: FAILED {shown(path.name)}: {_one_line(exc)}", file=sys.stderr)
            continue
        except (OSError, ValueError, MemoryError) as exc:
            bar.close()
            if args.debug:
                raise
            if single:
                raise UNetStudioError(f"{shown(path.name)}: {type(exc).__name__}: {_one_line(exc)}") from None
            failed.append(path)
            print(f"{PROG}: FAILED {shown(path.name)}: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
            continue
        bar.close()
        for warning in predictor.warnings:
            print(f"{PROG}: warning: {shown(path.name)}: {warning}", file=sys.stderr)
        print(f"{shown(path.name)}: " + ", ".join(shown(p.name) for p in written.values()))
    _summary(predictor, plan, failed, time.perf_counter() - start, device)
    return 1 if failed else 0


def _summary(predictor: _Predictor, plan: list, failed: list[Path], seconds: float, device: str) -> None:
    took = format_duration(seconds)
    if len(plan) == 1:
        summary = f"{PROG}: predicted in {took} on {device}"
    else:
        summary = f"{PROG}: {len(plan) - len(failed)} of {len(plan)} images predicted in {took}"
    if failed:
        summary += f"; {len(failed)} failed: {shown_list([p.name for p in failed], limit=20)}"
    if predictor.note:
        summary += f"; {predictor.note}"
    print(summary + f"; outputs in {predictor.out}", file=sys.stderr)
