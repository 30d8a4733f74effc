"""Metadata of zarr images for :func:`~unet_studio.core.io.zarr_image.open_zarr`: NGFF multiscales, plain arrays, TIFF.

NGFF 0.4 keeps ``multiscales`` and ``omero`` in the group's attributes (zarr format 2), NGFF 0.5 under
``attributes["ome"]`` (zarr format 3); both are read here. The metadata come from whoever wrote the folder:
every value is checked and a problem is an :class:`ImageReadError` saying what is wrong and what to do.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageReadError
from .zarr_image import ZarrImage, import_zarr, is_zarr_path, micrometres

log = logging.getLogger(__name__)

_TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8")
_AXES_HINT = "give its axes with --axes, e.g. --axes yx or --axes czyx"


def _fail(path: Path, problem: str, advice: str) -> ImageReadError:
    return ImageReadError(f"Cannot read '{path}': {problem}. {advice.rstrip('.')}.")


def check_axes(path: Path, axes: str, ndim: int) -> str:
    """Lower-case ``axes`` after checking them against an array of ``ndim`` dimensions."""
    axes = str(axes).strip().lower()
    if len(axes) != ndim or len(set(axes)) != len(axes) or not set(axes) <= set("tczyx") or not {"y", "x"} <= set(axes):
        raise _fail(path, f"the axes {axes!r} do not fit an array of {ndim} dimensions",
                    f"Give {ndim} different letters of t, c, z, y, x including y and x, e.g. --axes "
                    f"{'tczyx'[5 - ndim:] if ndim <= 5 else 'yx'}")
    return axes


def open_any(path: Path, axes: str | None) -> ZarrImage:
    """Open ``path`` (OME-Zarr folder, plain zarr array folder, TIFF file) as a :class:`ZarrImage`."""
    if path.is_file() and path.name.lower().endswith(_TIFF_SUFFIXES):
        return open_tiff_regions(path)
    if not path.exists():
        raise _fail(path, "the folder does not exist", "Check the path and the spelling of the name")
    if not is_zarr_path(path):
        raise _fail(path, "this is not a zarr folder (no zarr.json, .zgroup or .zarray in it)",
                    "Choose an .ome.zarr image folder")
    zarr = import_zarr()
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as exc:
        raise _fail(path, f"the zarr metadata cannot be read ({' '.join(str(exc).split())[:200]})",
                    "Copy or write the image again") from exc
    if isinstance(node, zarr.Array):
        if axes is None:
            raise ImageReadError(f"{path} is a zarr array without OME metadata: {_AXES_HINT}")
        axes = check_axes(path, axes, node.ndim)
        return _image(path, [node], axes, [(1.0,) * node.ndim], None, [])
    attrs = dict(node.attrs)
    ome = attrs.get("ome", attrs) if isinstance(attrs.get("ome"), dict) else attrs
    multiscales = ome.get("multiscales")
    if not multiscales and "bioformats2raw.layout" in ome and "0" in node:
        # bioformats2raw writes each series of a file as a numbered image group: read the first.
        log.info("%s holds the series of a converted file; reading series 0", path)
        return open_any(path / "0", axes)
    if not multiscales:
        raise _fail(path, "the zarr group has no OME multiscales metadata (it is not an OME-Zarr image)",
                    "Open the image folder itself (e.g. NAME.ome.zarr, or one of its series like NAME.ome.zarr/0)")
    return _from_multiscales(path, node, multiscales[0], ome.get("omero"), axes)


def _from_multiscales(path: Path, group: Any, meta: dict, omero: Any, axes: str | None) -> ZarrImage:
    try:
        names = "".join(str(a["name"] if isinstance(a, dict) else a).lower()[:1] for a in meta["axes"])
        units = {str(a["name"]).lower()[:1]: a.get("unit") for a in meta["axes"] if isinstance(a, dict)}
        datasets = meta["datasets"]
        levels = [group[str(d["path"])] for d in datasets]
        scales = [_scale(d.get("coordinateTransformations"), len(names)) for d in datasets]
    except (KeyError, TypeError, ValueError) as exc:
        raise _fail(path, f"its OME multiscales metadata cannot be interpreted ({exc!r})",
                    "Write the image again with a current OME-Zarr writer (e.g. ome-zarr-py, bioformats2raw)") from None
    if not levels:
        raise _fail(path, "its multiscales metadata name no resolution levels", "Write the image again")
    names = check_axes(path, names, levels[0].ndim)
    if axes is not None and check_axes(path, axes, levels[0].ndim) != names:
        raise _fail(path, f"--axes {axes} contradicts the image's own axes {names!r}",
                    "Leave out --axes for an OME-Zarr image")
    pixel = None
    sy, sx = micrometres(scales[0][names.index("y")], units.get("y")), micrometres(scales[0][names.index("x")], units.get("x"))
    if sy is not None and sx is not None and sy > 0 and sx > 0:
        pixel = (sy, sx)
    channel_names = []
    if isinstance(omero, dict) and isinstance(omero.get("channels"), list):
        channel_names = [str(ch.get("label", "")) if isinstance(ch, dict) else "" for ch in omero["channels"]]
    return _image(path, levels, names, scales, pixel, channel_names)


def _scale(transforms: Any, ndim: int) -> tuple[float, ...]:
    for transform in transforms or []:
        if transform.get("type") == "scale":
            scale = tuple(float(v) for v in transform["scale"])
            if len(scale) != ndim:
                raise ValueError(f"a scale of {len(scale)} values for {ndim} axes")
            return scale
    return (1.0,) * ndim


def _image(path: Path, levels: list, axes: str, scales: list, pixel, channel_names: list[str],
           closers: list | None = None) -> ZarrImage:
    n_channels = dict(zip(axes, levels[0].shape)).get("c", 1)
    names = [n or f"channel {k + 1}" for k, n in enumerate(channel_names[:n_channels])]
    names += [f"channel {k + 1}" for k in range(len(names), n_channels)]
    dtype = np.dtype(str(levels[0].dtype)) if not isinstance(levels[0].dtype, np.dtype) else levels[0].dtype
    return ZarrImage(path, levels, axes, scales, pixel, names, dtype.newbyteorder("="), closers or [])


def open_tiff_regions(path: Path) -> ZarrImage:
    """A TIFF (tiled, BigTIFF, pyramidal) read by region through tifffile's ``aszarr``."""
    import tifffile

    from .tiff import open_tiff

    zarr = import_zarr()
    layout = open_tiff(path)  # axes, calibration and channel names as the slice reader sees them
    layout.reader.close()
    tif = tifffile.TiffFile(path)
    try:
        series = tif.series[0]
        store = series.aszarr()
        node = zarr.open(store, mode="r")
        levels = [node] if isinstance(node, zarr.Array) else [node[str(k)] for k in range(len(series.levels))]
    except Exception as exc:
        tif.close()
        raise _fail(path, f"the TIFF cannot be read by region ({' '.join(str(exc).split())[:200]})",
                    "Save it again as a tiled TIFF") from exc
    axes = _tiff_axes(path, series.axes)
    scales = [tuple(float(s0) / float(s) for s0, s in zip(levels[0].shape, lv.shape)) for lv in levels]
    pixel = None
    if layout.pixel_size is not None:
        pixel = micrometres(layout.pixel_size[0], layout.unit), micrometres(layout.pixel_size[1], layout.unit)
        pixel = None if None in pixel else pixel
    image = _image(path, levels, axes, scales, pixel, layout.channel_names, [store.close, tif.close])
    return image


def _tiff_axes(path: Path, axes: str) -> str:
    mapping = {"Q": "z", "I": "z", "S": "c"}
    letters = "".join(mapping.get(a, a.lower()) for a in axes)
    if len(set(letters)) != len(letters) or not set(letters) <= set("tczyx"):
        raise _fail(path, f"its axes {axes!r} cannot be read by region", "Save it as a tiled TIFF of axes T, Z, C, Y, X")
    return letters


__all__ = ["check_axes", "open_any", "open_tiff_regions"]
