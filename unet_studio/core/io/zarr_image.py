"""OME-Zarr (NGFF 0.4 and 0.5) and region-readable TIFF images: lazy, multiscale, read block by block.

:func:`open_zarr` opens an OME-Zarr image folder (or a plain zarr array folder whose axes are given, or a
tiled/BigTIFF file through tifffile's ``aszarr``) as a :class:`ZarrImage`: its resolution levels as lazily
indexable arrays, its axes, scales, pixel size and channel names. Nothing is read until a region is asked
for. :func:`zarr_stack_reader` adapts a :class:`ZarrImage` to the slice reader an
:class:`~unet_studio.core.io.stack.ImageStack` holds, so every code path that reads an ``ImageStack``
(prediction, the application) reads OME-Zarr too.

zarr and ome-zarr are optional (the ``zarr`` extra): they are imported inside the functions that need them.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageReadError

log = logging.getLogger(__name__)

ZARR_SUFFIXES = (".ome.zarr", ".zarr")
"""Folder name endings of zarr images."""

NEEDS_ZARR = "reading OME-Zarr needs the zarr extra: pip install 'unet-studio[zarr]'"

_UNIT_TO_MICROMETRE = {
    "micrometer": 1.0, "micrometre": 1.0, "micron": 1.0, "um": 1.0, "µm": 1.0, "μm": 1.0,
    "nanometer": 1e-3, "nanometre": 1e-3, "nm": 1e-3, "millimeter": 1e3, "millimetre": 1e3, "mm": 1e3,
    "centimeter": 1e4, "cm": 1e4, "meter": 1e6, "metre": 1e6, "m": 1e6, "angstrom": 1e-4,
}


def import_zarr():
    """Return the ``zarr`` module, or raise :class:`ImageReadError` saying how to install it."""
    try:
        import zarr
    except ImportError:
        raise ImageReadError(NEEDS_ZARR) from None
    return zarr


def is_zarr_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a zarr image: a folder ending in ``.zarr`` or holding zarr metadata."""
    path = Path(path)
    if not path.is_dir():
        return False
    if path.name.lower().endswith(ZARR_SUFFIXES):
        return True
    return any((path / name).is_file() for name in ("zarr.json", ".zattrs", ".zgroup", ".zarray"))


def zarr_stem(path: str | os.PathLike) -> str:
    """The name of a zarr image without ``.ome.zarr`` / ``.zarr`` (``"a"`` for ``a.ome.zarr``)."""
    name = Path(path).name
    for suffix in ZARR_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass
class ZarrImage:
    """A lazily read multiscale image.

    Attributes
    ----------
    path : Path
        The folder (or TIFF file).
    levels : list
        One lazily indexable array per resolution level (zarr arrays); level 0 is the full resolution.
    axes : str
        Lower-case NGFF axis names of every level, e.g. ``"yx"``, ``"cyx"``, ``"tczyx"``.
    scales : list of tuple of float
        Per level, the scale of each axis (from ``coordinateTransformations``; 1.0 where none).
    pixel_size : tuple of float or None
        ``(y, x)`` pixel size of level 0 in micrometres, when the metadata give a spatial unit.
    channel_names : list of str
        One name per channel (omero metadata, else ``"channel k"``).
    dtype : numpy.dtype
        The pixel type (native byte order).
    """

    path: Path
    levels: list
    axes: str
    scales: list[tuple[float, ...]]
    pixel_size: tuple[float, float] | None
    channel_names: list[str]
    dtype: np.dtype
    _closers: list = field(default_factory=list, repr=False)
    missing_chunks: str = "error"  # a chunk absent from the store: "error" (a damaged copy) or "fill" (zeros)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of level 0, in :attr:`axes` order."""
        return tuple(int(n) for n in self.levels[0].shape)

    def level_shape(self, level: int) -> tuple[int, int, int, int]:
        """``(S, C, Y, X)`` of a level: S is T and Z flattened (T outer), C the channels (1 when none)."""
        sizes = dict(zip(self.axes, self.levels[level].shape))
        return (sizes.get("t", 1) * sizes.get("z", 1), sizes.get("c", 1), sizes["y"], sizes["x"])

    @property
    def stack_axes(self) -> str:
        """The axes flattened into S (upper case, T outer), those longer than 1: ``""``, ``"Z"``, ``"T"``, ``"TZ"``."""
        sizes = dict(zip(self.axes, self.shape))
        return "".join(a.upper() for a in "tz" if sizes.get(a, 1) > 1)

    def region(self, level: int, y0: int, y1: int, x0: int, x1: int, s: int = 0,
               c: int | slice | None = None) -> np.ndarray:
        """Read one ``(C, Y, X)`` block of slice ``s`` of a level.

        Parameters
        ----------
        level : int
            The resolution level (0 = full resolution).
        y0, y1, x0, x1 : int
            The block, in that level's pixels (clipped to the image).
        s : int
            The slice: T and Z flattened, T outer (as in :class:`~unet_studio.core.io.stack.ImageStack`).
        c : int, slice or None
            The channel(s); ``None`` for all. An int still gives a ``(1, Y, X)`` block.

        Returns
        -------
        numpy.ndarray
            ``(C, Y, X)`` in native byte order.

        Raises
        ------
        ImageReadError
            A chunk of the block is missing or cannot be decoded; the message names the chunks.
        """
        return read_region(self, level, y0, y1, x0, x1, s, c)

    def close(self) -> None:
        """Release open files (a TIFF read through ``aszarr``); a zarr folder holds none."""
        while self._closers:
            with contextlib.suppress(Exception):
                self._closers.pop()()


def open_zarr(path: str | os.PathLike, axes: str | None = None, level: int = 0,
              missing_chunks: str = "error") -> ZarrImage:
    """Open an OME-Zarr image, a plain zarr array, or a tiled/BigTIFF file, lazily.

    Parameters
    ----------
    path : str or os.PathLike
        An OME-Zarr image folder (NGFF 0.4 or 0.5), a plain zarr array folder (with ``axes``), or a TIFF file
        (read by region through tifffile's ``aszarr``; pyramid levels of the file become levels).
    axes : str, optional
        The axes of a plain zarr array (``"yx"``, ``"cyx"``, ``"czyx"``, ...); for an OME-Zarr, overrides
        nothing and must match its metadata when given.
    level : int
        The resolution level that becomes level 0 of the returned image (the coarser ones follow).
    missing_chunks : str
        ``"error"`` (default): a region that needs a chunk absent from the store is refused, naming the chunk
        (an interrupted copy must not read as zeros); ``"fill"``: absent chunks read as the fill value, as
        the zarr specification allows (for writers that leave out empty chunks).

    Returns
    -------
    ZarrImage

    Raises
    ------
    ImageReadError
        The folder does not exist, is not zarr, is a plain array without ``axes``, has metadata that cannot be
        interpreted, or zarr is not installed.
    """
    from .zarr_meta import open_any  # the metadata parsing lives beside, to keep this module readable

    if missing_chunks not in ("error", "fill"):
        raise ValueError(f"missing_chunks must be 'error' or 'fill', not {missing_chunks!r}")
    image = open_any(Path(path), axes)
    image.missing_chunks = missing_chunks
    if level:
        if not 0 <= level < len(image.levels):
            raise ImageReadError(f"Cannot read '{path}': it has {len(image.levels)} resolution level(s), "
                                 f"not a level {level}. Choose a level from 0 to {len(image.levels) - 1}.")
        factor = image.scales[level][-1] / image.scales[0][-1], image.scales[level][-2] / image.scales[0][-2]
        image.levels, image.scales = image.levels[level:], image.scales[level:]
        if image.pixel_size is not None:
            image.pixel_size = (image.pixel_size[0] * factor[1], image.pixel_size[1] * factor[0])
    return image


def _chunk_grid(array: Any, index: tuple, grid: tuple[int, ...] | None = None) -> list[tuple[int, ...]]:
    """The chunk grid positions (of ``grid``, else the stored objects: shards or chunks) a selection touches."""
    grid = grid or getattr(array, "shards", None) or array.chunks
    ranges = []
    for sel, size, n in zip(index, grid, array.shape):
        if isinstance(sel, slice):
            start, stop, _ = sel.indices(n)
            ranges.append(range(start // size, max(start // size + 1, math.ceil(stop / size))))
        else:
            ranges.append(range(int(sel) // size, int(sel) // size + 1))
    return list(itertools.product(*ranges))


def _chunk_key(array: Any, position: tuple[int, ...]) -> str:
    key = array.metadata.encode_chunk_key(position)
    return f"{array.path}/{key}" if array.path else key


def missing_chunks(array: Any, index: tuple) -> list[str]:
    """The store keys of the chunks a selection needs that are not in the store (empty when it cannot tell)."""
    try:
        import asyncio

        from zarr.core.sync import sync

        keys = [_chunk_key(array, pos) for pos in _chunk_grid(array, index)]

        async def exist() -> list[bool]:  # one round trip to zarr's event loop for all the keys
            return await asyncio.gather(*(array.store.exists(key) for key in keys))

        found = sync(exist())
        return [key for key, there in zip(keys, found) if not there]
    except (AttributeError, NotImplementedError, TypeError):  # a store that cannot tell has none to report
        return []


def damaged_chunk(array: Any, index: tuple) -> str:
    """The key of the first chunk of a selection that cannot be decoded (``"?"`` when none is found)."""
    if not hasattr(array, "get_block_selection"):
        return "?"
    stored = getattr(array, "shards", None) or array.chunks
    for position in _chunk_grid(array, index, grid=array.chunks):
        try:
            array.get_block_selection(position)
        except Exception:
            return _chunk_key(array, tuple(p * c // s for p, c, s in zip(position, array.chunks, stored)))
    return "?"


def read_region(image: ZarrImage, level: int, y0: int, y1: int, x0: int, x1: int, s: int = 0,
                c: int | slice | None = None) -> np.ndarray:
    """:meth:`ZarrImage.region` (see there)."""
    array = image.levels[level]
    sizes = dict(zip(image.axes, array.shape))
    n_t, n_z = sizes.get("t", 1), sizes.get("z", 1)
    if not 0 <= s < n_t * n_z:
        raise IndexError(f"slice {s} is out of range for {image.path} with {n_t * n_z} slices")
    where = {"t": s // n_z, "z": s % n_z, "y": slice(max(0, y0), max(0, y1)), "x": slice(max(0, x0), max(0, x1)),
             "c": slice(None) if c is None else (slice(c, c + 1) if isinstance(c, (int, np.integer)) else c)}
    index = tuple(where[a] for a in image.axes)
    place = f"'{image.path}' level {level}, slice {s}, region y {y0}:{y1}, x {x0}:{x1}"
    if image.missing_chunks == "error":
        missing = missing_chunks(array, index)
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise ImageReadError(
                f"Cannot read {place}: chunk {missing[0]}{more} is missing (an incomplete copy?). Copy the image "
                "again; if its writer leaves out empty chunks, read it with missing chunks as zeros "
                "(--missing-chunks fill).")
    try:
        block = np.asarray(array[index])
    except MemoryError:
        raise ImageReadError(f"Cannot read {place}: not enough memory. Read a smaller region.") from None
    except Exception as exc:
        raise ImageReadError(
            f"Cannot read {place}: chunk {damaged_chunk(array, index)} is damaged ({' '.join(str(exc).split())[:200]}). "
            "Copy or write the image again.") from exc
    kept = [a for a in image.axes if a in "cyx"]  # t and z were indexed away
    if "c" not in kept:
        block, kept = block[np.newaxis], ["c"] + kept
    block = np.transpose(block, [kept.index(a) for a in "cyx"])  # an RGB TIFF stores c after y, x
    return np.ascontiguousarray(block).astype(block.dtype.newbyteorder("="), copy=False)


class ZarrSliceReader:
    """The slice reader of an :class:`~unet_studio.core.io.stack.ImageStack` backed by level 0 of a ZarrImage."""

    def __init__(self, image: ZarrImage) -> None:
        self.image = image

    def read(self, i: int) -> np.ndarray:
        _, _, height, width = self.image.level_shape(0)
        return self.image.region(0, 0, height, 0, width, s=i)

    def close(self) -> None:
        self.image.close()


def zarr_stack_parts(image: ZarrImage) -> dict:
    """The keyword arguments of an :class:`ImageStack` for ``image`` (level 0), reader included."""
    return {"path": image.path, "axes": image.axes.upper(), "stack_axes": image.stack_axes,
            "shape": image.level_shape(0), "dtype": image.dtype, "pixel_size": image.pixel_size,
            "unit": "µm" if image.pixel_size is not None else "", "channel_names": image.channel_names,
            "reader": ZarrSliceReader(image)}


def micrometres(value: float, unit: str | None) -> float | None:
    """``value`` in ``unit`` converted to micrometres; ``None`` when the unit is absent or not a length."""
    factor = _UNIT_TO_MICROMETRE.get(str(unit or "").strip().lower())
    return None if factor is None else float(value) * factor


__all__ = ["NEEDS_ZARR", "ZARR_SUFFIXES", "ZarrImage", "ZarrSliceReader", "import_zarr", "is_zarr_path",
           "damaged_chunk", "micrometres", "missing_chunks", "open_zarr", "zarr_stem", "read_region", "zarr_stack_parts"]
