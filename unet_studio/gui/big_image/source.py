"""Big images in the application: a pyramid opened lazily, a stack that refuses whole reads, a slice proxy.

An image is *big* when one slice of its full resolution takes more than ``big_slice_bytes`` (64 MiB by
default, less when little memory is free). Such an image (an OME-Zarr folder) is opened as a
:class:`BigImageStack`: an :class:`~unet_studio.core.io.ImageStack` whose ``pyramid`` (a
:class:`PyramidSource`) reads regions of any level, and whose ``get_slice`` refuses to load a slice whole
(with a message, never an out-of-memory kill). The views get a :class:`BigSlice` instead of a slice array:
its shape is the full slice's, its ``overview`` the coarsest level (percentiles, histogram), and indexing
it reads only the region asked for. Every other image keeps the path it had.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ...core import io
from ...core.errors import ImageReadError, UNetStudioError

log = logging.getLogger(__name__)

__all__ = ["BIG_SLICE_BYTES", "BigImageStack", "BigSlice", "PyramidSource", "image_path", "is_big", "open_pyramid", "open_stack"]

BIG_SLICE_BYTES = 64 * 2**20
"""A slice larger than this (bytes, full resolution) is shown from its pyramid; smaller ones are read whole."""

OVERVIEW_MAX_SIDE = 4096
"""A big TIFF is shown from its pyramid when its coarsest level is at most this many pixels wide and high."""

PIXEL_BLOCK = 128
"""Side of the blocks single-pixel reads (the cursor's value) are cached in."""

MAX_REGION_PIXELS = 4096 * 4096
"""Most pixels one read of a :class:`BigSlice` may ask for (a whole 40000 x 40000 slice never is)."""


class PyramidSource:
    """Regions of the resolution levels of an image (a :class:`~unet_studio.core.io.ZarrImage`), counted.

    Parameters
    ----------
    image : ZarrImage
        The opened image (``levels``, ``level_shape``, ``region``, ``close``).

    Attributes
    ----------
    factors : list of int
        Per level, how many full-resolution pixels one of its pixels spans (1 for level 0).
    reads : list of tuple
        ``(level, height, width)`` of every region read so far (tests check that level 0 is never read whole).
    """

    def __init__(self, image) -> None:
        self.image = image
        self.shape = image.level_shape(0)
        width = self.shape[3]
        self.factors = [max(1, int(round(width / image.level_shape(k)[3]))) for k in range(len(image.levels))]
        self.reads: list[tuple[int, int, int]] = []
        self._lock = threading.Lock()
        self._closers: list = []

    @property
    def n_levels(self) -> int:
        return len(self.factors)

    def level_shape(self, level: int) -> tuple[int, int, int, int]:
        return self.image.level_shape(level)

    def region(self, level: int, y0: int, y1: int, x0: int, x1: int, s: int = 0) -> np.ndarray:
        """``(C, Y, X)`` of a region of ``level`` (in its own pixels), clipped to the level."""
        _, _, height, width = self.level_shape(level)
        y0, y1, x0, x1 = max(0, y0), min(height, y1), max(0, x0), min(width, x1)
        with self._lock:
            self.reads.append((level, max(y1 - y0, 0), max(x1 - x0, 0)))
        return self.image.region(level, y0, y1, x0, x1, s=s)

    def level_for(self, full_pixels_per_screen_pixel: float) -> int:
        """The coarsest level whose pixels are not larger than a screen pixel (0 when zoomed in)."""
        best = 0
        for level, factor in enumerate(self.factors):
            if factor <= max(full_pixels_per_screen_pixel, 1.0):
                best = level
        return best

    def on_close(self, closer) -> None:
        """Call ``closer`` when the image is closed (the tile loader stops its threads)."""
        self._closers.append(closer)

    def close(self) -> None:
        while self._closers:
            try:
                self._closers.pop()()
            except Exception:  # noqa: BLE001 - closing must not fail
                log.debug("closing a pyramid helper failed", exc_info=True)
        self.image.close()


class _RefusingReader:
    """The slice reader of a big image: a whole slice is never read (it does not fit, or takes too long)."""

    def __init__(self, source: PyramidSource, path: Path) -> None:
        self.source, self.path = source, path

    def read(self, i: int) -> np.ndarray:
        _, channels, height, width = self.source.shape
        raise ImageReadError(f"{self.path.name} is too big to read a whole slice ({height} x {width} pixels, "
                             f"{channels} channel(s)); it is shown and painted from its pyramid. Use "
                             "'unet-studio predict' on it, or crop a region in Fiji")

    def close(self) -> None:
        self.source.close()


class BigImageStack(io.ImageStack):
    """An :class:`ImageStack` of a big image: ``pyramid`` reads regions; :meth:`get_slice` refuses.

    ``is_big`` is True (views and the session test it); :meth:`fingerprint` hashes the coarsest level.
    """

    is_big = True

    def __init__(self, source: PyramidSource, path: Path) -> None:
        image = source.image
        super().__init__(path=path, axes=image.axes.upper(), stack_axes=image.stack_axes, shape=source.shape,
                         dtype=image.dtype, pixel_size=image.pixel_size,
                         unit="µm" if image.pixel_size is not None else "", channel_names=image.channel_names,
                         reader=_RefusingReader(source, path))
        self.pyramid = source

    def fingerprint(self) -> str:
        """A hash of the shape, dtype and the coarsest level's pixels (a whole slice is never read)."""
        source = self.pyramid
        level = source.n_levels - 1
        digest = hashlib.blake2b(digest_size=12)
        digest.update(repr((tuple(self.shape), str(self.dtype), "pyramid")).encode())
        _, _, height, width = source.level_shape(level)
        for s in sorted({0, self.shape[0] - 1}):
            digest.update(np.ascontiguousarray(source.region(level, 0, height, 0, width, s)).tobytes())
        return digest.hexdigest()


def is_big(stack) -> bool:
    """Whether ``stack`` is shown from its pyramid (a :class:`BigImageStack`)."""
    return bool(getattr(stack, "is_big", False))


def open_pyramid(path: str | Path) -> PyramidSource:
    """The pyramid of an OME-Zarr image (e.g. predicted labels), read region by region."""
    return PyramidSource(io.open_zarr(Path(path)))


def image_path(path: str | Path) -> Path:
    """``path``, or the OME-Zarr folder whose metadata file it is (a file dialog picks files, not folders)."""
    path = Path(path)
    if path.name in ("zarr.json", ".zattrs", ".zgroup") and io.is_zarr_path(path.parent):
        return path.parent
    return path


def open_stack(path: str | Path, big_slice_bytes: int = BIG_SLICE_BYTES):
    """Open an image: a :class:`BigImageStack` when its slice is big and it has a pyramid, else ``io.read_image``.

    A slice is big above ``big_slice_bytes`` or above a quarter of the free memory. Big OME-Zarr images and
    big TIFFs with pyramid levels (tiled OME-TIFF, read by region through tifffile) are shown from their
    pyramid; any other image takes the path it always took (a big TIFF without a pyramid is refused there,
    with what to do).
    """
    path = image_path(path)
    limit = min(big_slice_bytes, io.available_ram() // 4)
    if io.is_zarr_path(path):
        image = io.open_zarr(path)
        _, channels, height, width = image.level_shape(0)
        if channels * height * width * np.dtype(image.dtype).itemsize <= limit:
            image.close()
            return io.read_image(path)
        return BigImageStack(PyramidSource(image), path)
    stack = io.read_image(path)
    if stack.slice_nbytes <= limit or not path.name.lower().endswith((".tif", ".tiff", ".btf")):
        return stack
    try:
        image = io.open_zarr(path)
    except UNetStudioError:
        return stack
    _, _, height, width = image.level_shape(len(image.levels) - 1)
    if len(image.levels) < 2 or max(height, width) > OVERVIEW_MAX_SIDE:
        image.close()  # no pyramid to show it from: the usual path says it does not fit
        return stack
    stack.close()
    return BigImageStack(PyramidSource(image), path)


class BigSlice:
    """One slice of a big image as the views see it: full shape, an overview, region reads by indexing.

    Parameters
    ----------
    source : PyramidSource
        The image's pyramid (``BigImageStack.pyramid``).
    slice_index : int
        Which slice.
    blank : bool
        Zeros for the overview (it could not be read).
    """

    ndim = 3
    max_region_pixels = MAX_REGION_PIXELS

    def __init__(self, source: PyramidSource, slice_index: int, blank: bool = False) -> None:
        self.source, self.slice_index = source, int(slice_index)
        self.shape = tuple(source.shape[1:])
        self.dtype = np.dtype(source.image.dtype)
        self.overview_level = source.n_levels - 1
        _, channels, height, width = source.level_shape(self.overview_level)
        self.overview = np.zeros((channels, height, width), self.dtype) if blank else \
            source.region(self.overview_level, 0, height, 0, width, self.slice_index)
        self._blocks: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()  # for single-pixel reads

    def __getitem__(self, index) -> np.ndarray:
        index = index if isinstance(index, tuple) else (index,)
        index = index + (slice(None),) * (3 - len(index))
        channel, rows, cols = index
        y0, y1 = _bounds(rows, self.shape[1])
        x0, x1 = _bounds(cols, self.shape[2])
        if y1 - y0 == 1 and x1 - x0 == 1:  # the cursor's pixel: from a small cached block around it
            return self._pixel_block(y0, x0)[(channel, y0 % PIXEL_BLOCK, x0 % PIXEL_BLOCK)]
        if (y1 - y0) * (x1 - x0) > self.max_region_pixels:
            raise UNetStudioError(f"a region of {y1 - y0} x {x1 - x0} pixels of this big image is too much to "
                                  "read at once; zoom in and work on a smaller region")
        block = self.source.region(0, y0, y1, x0, x1, self.slice_index)
        local = (channel, _shift(rows), _shift(cols))
        return block[local]


    def _pixel_block(self, y: int, x: int) -> np.ndarray:
        key = (y // PIXEL_BLOCK, x // PIXEL_BLOCK)
        if key not in self._blocks:
            if len(self._blocks) >= 16:
                self._blocks.popitem(last=False)
            y0, x0 = key[0] * PIXEL_BLOCK, key[1] * PIXEL_BLOCK
            self._blocks[key] = self.source.region(0, y0, y0 + PIXEL_BLOCK, x0, x0 + PIXEL_BLOCK, self.slice_index)
        return self._blocks[key]


def _bounds(index, size: int) -> tuple[int, int]:
    if isinstance(index, slice):
        start, stop, _ = index.indices(size)
        return start, max(stop, start)
    value = int(index) % size
    return value, value + 1


def _shift(index):
    """``index`` in the read block, which spans exactly the selected range."""
    if isinstance(index, slice):
        return slice(None, None, index.step)
    return 0  # a single row or column: the block's only one
