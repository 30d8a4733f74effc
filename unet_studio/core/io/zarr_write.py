"""Writing OME-Zarr images: level 0 in chunks, a multiscale pyramid built chunk by chunk, atomic folders.

:func:`create_ome_zarr` makes an empty image (level 0, its multiscales metadata) that a caller fills chunk
by chunk; :func:`build_pyramid` then adds the coarser levels, each computed from the one before block by
block, so no level is ever held whole in memory. Labels are downsampled by the mode of each 2 x 2 block
(ties go to its top-left pixel, the nearest one), never averaged, so every value of a coarser level is a
value of level 0; intensities and probabilities by the mean. :func:`atomic_zarr` writes into a temporary
folder beside the target and renames it into place when done, so no half-written image looks finished.
The metadata are written with ome-zarr's own writer (``ome_zarr.writer``), NGFF 0.5 by default.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageWriteError
from .atomic import describe_write_error, temporary_stem

log = logging.getLogger(__name__)

NEEDS_ZARR_WRITE = "writing OME-Zarr needs the zarr extra: pip install 'unet-studio[zarr]'"
KINDS = ("labels", "intensity", "probabilities")
DEFAULT_CHUNK = 512
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def _modules():
    try:
        import zarr
        from ome_zarr import format as ome_format
        from ome_zarr import writer as ome_writer
    except ImportError:
        raise ImageWriteError(NEEDS_ZARR_WRITE) from None
    return zarr, ome_format, ome_writer


def holds_data(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file, or a folder with anything in it."""
    path = Path(path)
    if path.is_dir():
        return any(path.iterdir())
    return path.exists() or path.is_symlink()


def refuse_existing(path: str | os.PathLike) -> None:
    """Raise :class:`ImageWriteError` when ``path`` already holds data."""
    if holds_data(path):
        raise ImageWriteError(f"{path} already holds data: choose another --out or pass --overwrite")


def _check_axes(axes: str, ndim: int) -> str:
    axes = axes.lower()
    if len(axes) != ndim or len(set(axes)) != ndim or not set(axes) <= set(_AXIS_TYPES) or not axes.endswith("yx"):
        raise ValueError(f"axes {axes!r} do not fit {ndim} dimensions ending in y, x (letters of t, c, z, y, x)")
    return axes


def _default_chunks(shape: tuple[int, ...], axes: str) -> tuple[int, ...]:
    return tuple(min(n, DEFAULT_CHUNK) if a in "yx" else 1 for a, n in zip(axes, shape))


def _array_options(zarr_format: int, axes: str) -> dict:
    # Every chunk is written, empty ones too, so that a chunk missing on read means a damaged copy (the
    # reader refuses it) rather than an image of zeros; NGFF 0.4 wants "/" between chunk indices.
    options: dict = {"config": {"write_empty_chunks": True}}
    if zarr_format == 3:
        options["dimension_names"] = list(axes)
    else:
        options["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
    return options


def _axes_meta(axes: str, spatial_unit: str | None) -> list[dict]:
    out = []
    for a in axes:
        entry = {"name": a, "type": _AXIS_TYPES[a]}
        if a in "zyx" and spatial_unit:
            entry["unit"] = spatial_unit
        out.append(entry)
    return out


def create_ome_zarr(path: str | os.PathLike, shape: tuple[int, ...], dtype: Any, chunks: tuple[int, ...] | None,
                    axes: str, pixel_size: tuple[float, float] | None = None,
                    channel_names: list[str] | None = None, overwrite: bool = False, ngff: str = "0.5",
                    name: str | None = None) -> Any:
    """Create an empty OME-Zarr image (level 0 and its multiscales metadata), ready to be filled in chunks.

    Parameters
    ----------
    path : str or os.PathLike
        The image folder to create (``NAME.ome.zarr``).
    shape, dtype : tuple of int, dtype
        Shape (in ``axes`` order) and pixel type of level 0.
    chunks : tuple of int or None
        Chunk shape; ``None``: 512 x 512 in y, x and 1 along the other axes.
    axes : str
        NGFF axes, e.g. ``"yx"``, ``"cyx"``, ``"zyx"``, ``"tczyx"`` (ending in ``yx``).
    pixel_size : tuple of float, optional
        ``(y, x)`` in micrometres (becomes the scale of y and x, unit ``micrometer``).
    channel_names : list of str, optional
        One name per channel (omero metadata).
    overwrite : bool
        Replace what ``path`` holds; without it a path that holds data is refused.
    ngff : str
        ``"0.5"`` (zarr format 3) or ``"0.4"`` (zarr format 2).

    Returns
    -------
    zarr.Array
        Level 0, writable.

    Raises
    ------
    ImageWriteError
        ``path`` holds data and ``overwrite`` is false, it cannot be written, or zarr is not installed.
    """
    zarr, ome_format, ome_writer = _modules()
    path = Path(path)
    axes = _check_axes(axes, len(shape))
    if not overwrite:
        refuse_existing(path)
    fmt = ome_format.format_from_version(ngff)
    chunks = tuple(int(c) for c in (chunks or _default_chunks(shape, axes)))
    try:
        group = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
        array = group.create_array("0", shape=tuple(shape), chunks=chunks, dtype=np.dtype(dtype), fill_value=0,
                                   **_array_options(fmt.zarr_format, axes))
        scale = [1.0] * len(axes)
        if pixel_size is not None:
            scale[axes.index("y")], scale[axes.index("x")] = float(pixel_size[0]), float(pixel_size[1])
        datasets = [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}]
        ome_writer.write_multiscales_metadata(group, datasets, fmt=fmt,
                                              axes=_axes_meta(axes, "micrometer" if pixel_size else None),
                                              name=name or path.name.split(".")[0])
        if "c" in axes:
            n = shape[axes.index("c")]
            names = list(channel_names or [])[:n] + [f"channel {k + 1}" for k in range(len(channel_names or []), n)]
            ome_writer.add_metadata(group, {"omero": {"channels": [{"label": str(n_)} for n_ in names]}}, fmt)
    except OSError as exc:
        raise ImageWriteError(describe_write_error(exc, path)) from None
    return array


def _mode_2x2(block: np.ndarray) -> np.ndarray:
    """The most frequent of each 2 x 2 block of the last two axes (ties: the top-left one)."""
    corners = np.stack([block[..., 0::2, 0::2], block[..., 0::2, 1::2], block[..., 1::2, 0::2], block[..., 1::2, 1::2]])
    counts = (corners[:, None] == corners[None, :]).sum(axis=1)
    pick = np.argmax(counts, axis=0)  # first maximum: the top-left value wins a tie
    return np.take_along_axis(corners, pick[None], axis=0)[0]


def _mean_2x2(block: np.ndarray) -> np.ndarray:
    mean = block.reshape(block.shape[:-2] + (block.shape[-2] // 2, 2, block.shape[-1] // 2, 2)).mean(
        axis=(-3, -1), dtype=np.float64)
    if block.dtype.kind in "ui":
        info = np.iinfo(block.dtype)
        return np.clip(np.rint(mean), info.min, info.max).astype(block.dtype)
    return mean.astype(block.dtype)


def downsample_2x(block: np.ndarray, kind: str) -> np.ndarray:
    """Halve the last two axes of ``block`` (rounding up: an odd edge repeats its last row/column).

    ``kind`` ``"labels"``: the mode of each 2 x 2 block (values of ``block`` only); ``"intensity"`` or
    ``"probabilities"``: the mean (rounded for integer types).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    pad = [(0, 0)] * (block.ndim - 2) + [(0, block.shape[-2] % 2), (0, block.shape[-1] % 2)]
    if any(p[1] for p in pad):
        block = np.pad(block, pad, mode="edge")
    return _mode_2x2(block) if kind == "labels" else _mean_2x2(block)


def _level_shapes(shape: tuple[int, ...], axes: str, min_side: int) -> list[tuple[int, ...]]:
    """Shapes of levels 1.. : y and x halved (rounding up) while the longer side stays at least ``min_side``."""
    iy, ix = axes.index("y"), axes.index("x")
    shapes, current = [], list(shape)
    while True:
        nxt = list(current)
        nxt[iy], nxt[ix] = math.ceil(current[iy] / 2), math.ceil(current[ix] / 2)
        if max(nxt[iy], nxt[ix]) < max(1, min_side) or nxt == current:
            return shapes
        shapes.append(tuple(nxt))
        current = nxt


def _blocks(shape: tuple[int, ...], chunks: tuple[int, ...]) -> Iterator[tuple[slice, ...]]:
    """Every chunk of an array, as a tuple of slices."""
    ranges = [range(0, n, c) for n, c in zip(shape, chunks)]
    for starts in itertools.product(*ranges):
        yield tuple(slice(s, min(s + c, n)) for s, c, n in zip(starts, chunks, shape))


def build_pyramid(path: str | os.PathLike, kind: str, min_side: int = 256) -> int:
    """Add levels 1.. to an OME-Zarr image by 2 x downsampling in y and x, chunk by chunk.

    Parameters
    ----------
    path : str or os.PathLike
        An image written by :func:`create_ome_zarr` (level 0 filled).
    kind : str
        ``"labels"`` (mode of 2 x 2 blocks, never averaged), ``"intensity"`` or ``"probabilities"`` (mean).
    min_side : int
        Levels are added while the longer side of the next one is at least this.

    Returns
    -------
    int
        The number of levels now in the image (1 when it is already small).
    """
    zarr, ome_format, ome_writer = _modules()
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    group = zarr.open_group(str(path), mode="r+")
    attrs = dict(group.attrs)
    ome = attrs["ome"] if isinstance(attrs.get("ome"), dict) else attrs
    meta = dict(ome["multiscales"][0])
    axes = "".join(str(a["name"])[0] for a in meta["axes"])
    iy, ix = axes.index("y"), axes.index("x")
    base = meta["datasets"][0]
    datasets = [base]
    source = group[str(base["path"])]
    scale = list(next(t["scale"] for t in base["coordinateTransformations"] if t["type"] == "scale"))
    for number, shape in enumerate(_level_shapes(tuple(source.shape), axes, min_side), start=1):
        chunks = tuple(min(c, n) for c, n in zip(source.chunks, shape))
        target = group.create_array(str(number), shape=shape, chunks=chunks, dtype=source.dtype, fill_value=0,
                                    overwrite=True, **_array_options(group.metadata.zarr_format, axes))
        for block in _blocks(shape, chunks):
            src = list(block)
            src[iy] = slice(2 * block[iy].start, min(2 * block[iy].stop, source.shape[iy]))
            src[ix] = slice(2 * block[ix].start, min(2 * block[ix].stop, source.shape[ix]))
            target[block] = downsample_2x(np.moveaxis(np.asarray(source[tuple(src)]), (iy, ix), (-2, -1)),
                                          kind).transpose(_inverse_yx(len(axes), iy, ix))
        scale[iy], scale[ix] = scale[iy] * 2, scale[ix] * 2
        datasets.append({"path": str(number), "coordinateTransformations": [{"type": "scale", "scale": list(scale)}]})
        source = target
    fmt = ome_format.format_from_version(str(ome.get("version", meta.get("version", "0.5"))))
    ome_writer.write_multiscales_metadata(group, datasets, fmt=fmt, axes=meta["axes"], name=meta.get("name"))
    return len(datasets)


def _inverse_yx(ndim: int, iy: int, ix: int) -> tuple[int, ...]:
    """The transpose that undoes ``np.moveaxis(a, (iy, ix), (-2, -1))``."""
    order = [a for a in range(ndim) if a not in (iy, ix)] + [iy, ix]
    return tuple(np.argsort(order))


@contextlib.contextmanager
def atomic_zarr(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it becomes ``path`` (replacing it with ``overwrite``).

    On an error (or a stop) the temporary folder is removed and ``path`` is untouched. Without ``overwrite``
    a ``path`` that holds data is refused before anything is written.
    """
    target = Path(path)
    if not overwrite:
        refuse_existing(target)
    tmp = target.parent / f".{temporary_stem(target.name)}.{uuid.uuid4().hex[:8]}.tmp.zarr"
    try:
        yield tmp
        if not tmp.exists():
            raise ImageWriteError(f"cannot write {target}: nothing was written")
        old = None
        if target.exists() or target.is_symlink():
            old = target.parent / f".{temporary_stem(target.name)}.{uuid.uuid4().hex[:8]}.old.zarr"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    except OSError as exc:
        raise ImageWriteError(describe_write_error(exc, target)) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def ome_zarr_output(path: str | os.PathLike, shape: tuple[int, ...], dtype: Any, axes: str, kind: str,
                    pixel_size: tuple[float, float] | None = None, channel_names: list[str] | None = None,
                    chunks: tuple[int, ...] | None = None, overwrite: bool = False, min_side: int = 256,
                    ngff: str = "0.5") -> Iterator[Any]:
    """Yield level 0 of a new OME-Zarr image to fill; on success add its pyramid and move it into place.

    The image is written into a temporary folder beside ``path`` (:func:`atomic_zarr`): an error or a stop
    leaves ``path`` as it was. Parameters as :func:`create_ome_zarr` and :func:`build_pyramid`.
    """
    with atomic_zarr(path, overwrite) as tmp:
        yield create_ome_zarr(tmp, shape, dtype, chunks, axes, pixel_size, channel_names, ngff=ngff,
                              name=Path(path).name.split(".")[0])
        build_pyramid(tmp, kind, min_side)


def write_ome_zarr(path: str | os.PathLike, array: np.ndarray, axes: str, kind: str,
                   pixel_size: tuple[float, float] | None = None, channel_names: list[str] | None = None,
                   chunks: tuple[int, ...] | None = None, overwrite: bool = False, min_side: int = 256,
                   ngff: str = "0.5") -> Path:
    """Write an in-memory array as an OME-Zarr image with its pyramid, atomically.

    Parameters
    ----------
    path : str or os.PathLike
        The image folder (``NAME.ome.zarr``).
    array : numpy.ndarray
        Level 0, in ``axes`` order.
    axes, kind, pixel_size, channel_names, chunks, overwrite, min_side, ngff
        See :func:`create_ome_zarr` and :func:`build_pyramid`.

    Returns
    -------
    Path
        ``path``.
    """
    array = np.asarray(array)
    with ome_zarr_output(path, array.shape, array.dtype, axes, kind, pixel_size, channel_names, chunks,
                         overwrite, min_side, ngff) as level0:
        level0[...] = array
    return Path(path)


__all__ = ["KINDS", "NEEDS_ZARR_WRITE", "atomic_zarr", "build_pyramid", "create_ome_zarr", "downsample_2x",
           "holds_data", "ome_zarr_output", "refuse_existing", "write_ome_zarr"]
