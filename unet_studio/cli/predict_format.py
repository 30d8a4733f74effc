"""``unet-studio predict`` options for OME-Zarr: the output format, the axes of a plain zarr input, missing chunks.

The output format is ``--format tiff|zarr``; without it, OME-Zarr when ``--out`` ends in ``.ome.zarr`` or an
input is an OME-Zarr folder, TIFF otherwise. ``--out NAME.ome.zarr`` (one input) writes the labels to that
very folder and the other outputs beside it (``NAME_probabilities.ome.zarr``, ...).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import ConfigError
from ..core.io import is_zarr_path, zarr_stem

FORMATS = ("tiff", "zarr")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The OME-Zarr options of ``predict``."""
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="output format: tiff (NAME_labels.tif) or zarr (NAME_labels.ome.zarr, OME-Zarr with a "
                        "multiscale pyramid); default: zarr when --out ends in .ome.zarr or an input is OME-Zarr, "
                        "else tiff")
    parser.add_argument("--axes", metavar="AXES",
                        help="axes of a plain zarr array input without OME metadata, e.g. yx, cyx, czyx, tczyx")
    parser.add_argument("--missing-chunks", choices=("error", "fill"), default="error",
                        help="a chunk missing from a zarr input: error (default: the image fails, naming the "
                        "chunk) or fill (read as zeros, for writers that leave out empty chunks)")


def input_stem(path: Path) -> str:
    """The name an input's outputs start with: ``a`` for ``a.tif`` and for ``a.ome.zarr``."""
    return zarr_stem(path) if is_zarr_path(path) else path.stem


def input_suffix(path: Path) -> str:
    """The extension that tells apart inputs of one name: ``tif`` for ``a.tif``, ``ome_zarr`` for ``a.ome.zarr``."""
    if is_zarr_path(path):
        return path.name[len(zarr_stem(path)) + 1:].replace(".", "_") or "zarr"
    return path.suffix[1:]


@dataclass(frozen=True)
class OutputChoice:
    """Where and how the outputs go: the folder, the format, and the labels' name when ``--out`` names it."""

    folder: Path
    format: str
    name: str | None = None  # --out NAME.ome.zarr: the one input's outputs are named NAME


def choose_output(args: argparse.Namespace, inputs: list[Path]) -> OutputChoice:
    """The output folder and format from ``--out``, ``--format`` and the inputs.

    Raises
    ------
    ConfigError
        ``--out NAME.ome.zarr`` with several inputs, or with ``--format tiff``.
    """
    out = Path(args.out)
    named = out.name.lower().endswith(".ome.zarr")
    if named:
        if args.format == "tiff":
            raise ConfigError(f"--out {out} is an OME-Zarr name but --format is tiff; give an output folder for "
                              "TIFF outputs, or leave out --format tiff")
        if len(inputs) != 1:
            raise ConfigError(f"--out {out} names one OME-Zarr image but there are {len(inputs)} inputs; give an "
                              "output folder instead")
        return OutputChoice(out.parent, "zarr", zarr_stem(out))
    fmt = args.format or ("zarr" if any(is_zarr_path(p) for p in inputs) else "tiff")
    return OutputChoice(out, fmt)


__all__ = ["FORMATS", "OutputChoice", "add_arguments", "choose_output", "input_stem", "input_suffix"]
