"""``unet-studio predict``: label images (and probabilities, instances, measurements) with a trained model.

For each input ``NAME.ext`` it writes into ``--out``:

- ``NAME_labels.tif``: the most probable class per pixel, in the class values the model was trained with
  ((Y, X), or (S, Y, X) for a stack);
- with ``--probabilities``: ``NAME_probabilities.tif``, float32 softmax, (K, Y, X) or (S, K, Y, X);
- with ``--instances``: ``NAME_instances.tif``, one number per object (touching objects split by a
  watershed unless ``--no-split``), per slice;
- with ``--measure``: ``NAME_measurements.csv``, one row per object (with a ``slice`` column for stacks and
  physical units when the image is calibrated).

Stacks are predicted slice by slice and written through memory-mapped TIFFs, so their outputs never have to
fit in memory. Every output is written atomically: a failure leaves no partial file. A file that cannot be
read (or does not fit the model) is reported in one line and the others go on; the exit status is 1 if any
failed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np

from ..core.model import checkpoint as checkpoint
from ..core.io import stack as io
from ..core.io.atomic import atomic_path, check_writable
from ..core.config import InferConfig
from ..core.device import configure_cpu_threads, describe_device, select_device
from ..core.errors import ConfigError, ImageReadError, InferenceError, UNetStudioError
from ..core.predict.tiled import (
    check_slice_memory,
    iter_predict_stack,
    label_dtype,
    make_normalizer,
    probabilities_to_labels,
    smallest_tile,
    tiff_memmap,
)
from ..core.predict.postprocess import InstanceConfig, find_instances, measure, table_to_csv
from .progress import ProgressBar, format_duration

PROG = "unet-studio predict"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, metavar="MODEL_DIR", help="model folder written by 'unet-studio train'")
    parser.add_argument("--images", required=True, metavar="DIR_OR_FILE", help="an image file or a folder of images")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if needed)")
    parser.add_argument("--probabilities", action="store_true", help="also write NAME_probabilities.tif (float32)")
    parser.add_argument("--instances", action="store_true", help="also write NAME_instances.tif (one number per object)")
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


def _float_list(text: str | None, what: str) -> tuple[float, ...]:
    if not text:
        return ()
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers, got {text!r}") from None


def _inputs(images: Path) -> list[Path]:
    if images.is_file():
        return [images]
    if not images.exists():
        raise ImageReadError(f"'{images}' does not exist: give an image file or a folder of images")
    found = io.list_images(images)
    if not found:
        raise ImageReadError(f"no images in '{images}' (supported: {', '.join(io.SUPPORTED_SUFFIXES)})")
    return found


def foreground_classes(class_values: list[int], class_names: list[str], chosen: tuple[float, ...] = ()) -> list[int]:
    """Indices of the classes that form objects: ``chosen`` values, else all but the background class."""
    if chosen:
        missing = [v for v in chosen if int(v) not in class_values]
        if missing:
            raise ConfigError(f"--foreground {missing} are not class values of this model ({class_values})")
        return [k for k, v in enumerate(class_values) if v in {int(c) for c in chosen}]
    names = [n.lower() for n in class_names]
    if "background" in names:
        background = names.index("background")
    elif 0 in class_values:
        background = class_values.index(0)
    else:
        background = 0
    return [k for k in range(len(class_values)) if k != background]


class _Predictor:
    """Everything fixed for the run: model, settings, output choices."""

    def __init__(self, args: argparse.Namespace) -> None:
        device = select_device(args.device)
        self.model, self.info = checkpoint.load_model(args.model, device)
        thresholds = _float_list(args.thresholds, "--thresholds")
        self.note = ""
        n_classes = self.info.model_config.n_classes
        if thresholds and len(thresholds) != n_classes:
            raise ConfigError(f"--thresholds needs {n_classes} values (one per class: "
                              f"{', '.join(self.info.class_names)}), got {len(thresholds)}")
        if args.thresholds is None and self.info.thresholds:
            thresholds = tuple(self.info.thresholds)  # calibrated on the validation data when it was trained
            chosen = ", ".join(f"{name} {t:.2f}" for name, t in zip(self.info.class_names, thresholds) if t > 0)
            self.note = (f"using the model's thresholds, chosen on its validation data: {chosen} "
                         "(--thresholds 0,0 for plain argmax)")
        changes = {"device": "auto", "thresholds": thresholds, "tta": args.tta}
        if args.tile_size is not None:
            changes["tile_size"] = args.tile_size
        if args.overlap is not None:
            changes["overlap"] = args.overlap
        if args.batch_size is not None:
            changes["batch_size"] = args.batch_size
        self.config = InferConfig(**changes)
        minimum = smallest_tile(self.info.model_config, self.config)
        if args.tile_size is not None and args.tile_size < minimum:
            raise ConfigError(f"--tile-size {args.tile_size} is too small for this model; use at least {minimum}")
        self.normalize = make_normalizer(self.info.normalization)
        self.want_instances = args.instances or args.measure
        self.foreground = foreground_classes(self.info.class_values, self.info.class_names,
                                             _float_list(args.foreground, "--foreground"))
        self.instance_config = InstanceConfig(method="components" if args.no_split else "watershed",
                                              min_size=max(0, args.min_size))
        self.args = args
        self.out = Path(args.out)
        self.device = device
        self.warnings: list[str] = []  # about the last image: NaN pixels, a constant image

    def outputs(self, name: str) -> dict[str, Path]:
        names = {"labels": f"{name}_labels.tif"}
        if self.args.probabilities:
            names["probabilities"] = f"{name}_probabilities.tif"
        if self.args.instances:
            names["instances"] = f"{name}_instances.tif"
        if self.args.measure:
            names["measurements"] = f"{name}_measurements.csv"
        return {key: self.out / value for key, value in names.items()}

    def run_one(self, path: Path, bar: ProgressBar) -> dict[str, Path]:
        with io.read_image(path) as stack:
            n_slices, channels, height, width = stack.shape
            expected = self.info.model_config.in_channels
            if channels != expected:
                raise InferenceError(
                    f"'{path}' has {channels} channel{'s' * (channels != 1)} but the model expects {expected}; "
                    "use a model trained on images like this one"
                )
            k = self.info.model_config.n_classes
            # Before the outputs take their space on disk: a slice too large for the memory is refused.
            check_slice_memory((channels, height, width), k, stack.dtype.itemsize, path)
            targets = self.outputs(path.stem)
            lead = (n_slices,) if n_slices > 1 else ()
            axis = "T" if stack.stack_axes == "T" else "Z"
            stack_axes = axis if lead else ""
            calib = {"pixel_size": stack.pixel_size, "unit": stack.unit}
            with contextlib.ExitStack() as outputs:
                labels_out = outputs.enter_context(tiff_memmap(
                    targets["labels"], lead + (height, width), label_dtype(self.info.class_values),
                    stack_axes + "YX", **calib))
                probs_out = instances_out = csv_tmp = None
                if "probabilities" in targets:
                    probs_out = outputs.enter_context(tiff_memmap(
                        targets["probabilities"], lead + (k, height, width), np.float32, stack_axes + "CYX", **calib,
                        metadata={"mode": "grayscale", "min": 0.0, "max": 1.0}))
                if "instances" in targets:
                    dtype = np.uint16 if height * width <= 65535 * 16 else np.uint32
                    instances_out = outputs.enter_context(tiff_memmap(
                        targets["instances"], lead + (height, width), dtype, stack_axes + "YX", **calib))
                if "measurements" in targets:
                    csv_tmp = outputs.enter_context(atomic_path(targets["measurements"]))
                raw_slice: dict[int, np.ndarray] = {}
                flagged: list[str] = []
                self.warnings = []

                def prepare(raw: np.ndarray) -> np.ndarray:
                    raw_slice["raw"] = raw
                    problem = io.pixel_warning(raw)
                    if problem:
                        flagged.append(problem)
                    return self.normalize(raw)

                csv_parts: list[str] = []
                for progress in iter_predict_stack(self.model, stack, self.config, prepare=prepare):
                    done = progress.slice_index * progress.tiles_total + progress.tiles_done
                    text = f"slice {progress.slice_index + 1}/{n_slices}, " if n_slices > 1 else ""
                    bar.update(done, progress.tiles_total * n_slices, f"{text}{format_duration(progress.elapsed_s)} "
                               f"elapsed, {format_duration(progress.eta_s)} left")
                    if progress.result is None:
                        continue
                    index = (progress.slice_index,) if lead else ()
                    probs = progress.result
                    labels = probabilities_to_labels(probs, self.info.class_values, self.config.thresholds)
                    labels_out[index] = labels
                    if probs_out is not None:
                        probs_out[index] = probs
                    if self.want_instances:
                        fg_index = probabilities_to_labels(probs, list(range(k)), self.config.thresholds)
                        mask = np.isin(fg_index, self.foreground)
                        fg_prob = probs[self.foreground].sum(0) if self.foreground else None
                        instances = find_instances(mask, fg_prob, self.instance_config)
                        if instances_out is not None:
                            if instances.max(initial=0) > np.iinfo(instances_out.dtype).max:
                                raise InferenceError(f"'{path}': too many objects ({instances.max()}) for the instance image")
                            instances_out[index] = instances
                        if csv_tmp is not None:
                            table = measure(instances, raw_slice["raw"], stack.pixel_size, stack.unit)
                            part = table_to_csv(table, {"slice": progress.slice_index} if lead else None)
                            csv_parts.append(part if not csv_parts else part.split("\n", 1)[1])
                if csv_tmp is not None:
                    csv_tmp.write_text("".join(csv_parts), encoding="utf-8")
                del labels_out, probs_out, instances_out
        if flagged:
            more = f" (in {len(flagged)} of {n_slices} slices)" if n_slices > 1 else ""
            self.warnings = [flagged[0] + more]
        return targets


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def run(args: argparse.Namespace) -> int:
    configure_cpu_threads()
    predictor = _Predictor(args)
    inputs = _inputs(Path(args.images))
    check_writable(predictor.out)  # a read-only or impossible --out: say so before any work
    device = describe_device(predictor.device)
    # One image: its failure is the command's error, one line. Several: one line per failed image, the
    # others go on, and a summary.
    single = len(inputs) == 1
    if not single:
        print(f"{PROG}: {len(inputs)} images on {device}", file=sys.stderr)
    failed: list[Path] = []
    start = time.perf_counter()
    for number, path in enumerate(inputs, start=1):
        bar = ProgressBar(path.name if single else f"[{number}/{len(inputs)}] {path.name}")
        try:
            written = predictor.run_one(path, bar)
        except UNetStudioError as exc:
            bar.close()
            if single:
                raise
            failed.append(path)
            print(f"{PROG}: FAILED {path.name}: {_one_line(exc)}", file=sys.stderr)
            continue
        except (OSError, ValueError, MemoryError) as exc:
            bar.close()
            if args.debug:
                raise
            if single:
                raise UNetStudioError(f"{path.name}: {type(exc).__name__}: {_one_line(exc)}") from None
            failed.append(path)
            print(f"{PROG}: FAILED {path.name}: {type(exc).__name__}: {_one_line(exc)}", file=sys.stderr)
            continue
        bar.close()
        for warning in predictor.warnings:
            print(f"{PROG}: warning: {path.name}: {warning}", file=sys.stderr)
        print(f"{path.name}: " + ", ".join(p.name for p in written.values()))
    done = len(inputs) - len(failed)
    took = format_duration(time.perf_counter() - start)
    if single:
        summary = f"{PROG}: predicted in {took} on {device}"
    else:
        summary = f"{PROG}: {done} of {len(inputs)} images predicted in {took}"
    if failed:
        summary += f"; {len(failed)} failed: {', '.join(p.name for p in failed)}"
    if predictor.note:
        summary += f"; {predictor.note}"
    print(summary + f"; outputs in {predictor.out}", file=sys.stderr)
    return 1 if failed else 0
