"""How a big image is cut into blocks for blockwise prediction, and how a block is read.

Each block is predicted with the overlap-tile code (:mod:`unet_studio.core.predict.tiled`) on the block plus
a margin of real image around it (the network's receptive-field reach, rounded up to the pooling grid); the
tiled predictor mirror-pads only that window, and the margin is cropped away, so the mirrored pixels never
reach the kept output. At the true image border the window stops at the border and the predictor's mirror
padding is the same as a whole-image pass would use. Block and window origins sit on the pooling grid
(``2**(depth-1)``), so the kept pixels equal a single-process :func:`predict_probabilities` of the image.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..config import InferConfig, ModelConfig
from ..errors import ImageReadError
from ..model import context_margin
from .tiling import effective_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Block:
    """One block: its place in the grid, the image region it owns and the window it reads.

    ``core`` and ``window`` are ``(y0, y1, x0, x1)`` in image pixels; the window holds the core plus real
    context on every side that is not the image border.
    """

    index: int
    row: int
    col: int
    core: tuple[int, int, int, int]
    window: tuple[int, int, int, int]

    @property
    def name(self) -> str:
        return f"{self.row}_{self.col}"

    @property
    def crop(self) -> tuple[slice, slice]:
        """Where the core lies inside the window."""
        y0, y1, x0, x1 = self.core
        wy0, _, wx0, _ = self.window
        return slice(y0 - wy0, y1 - wy0), slice(x0 - wx0, x1 - wx0)

    def describe(self) -> str:
        y0, y1, x0, x1 = self.core
        return f"block {self.name} (rows {y0}:{y1}, columns {x0}:{x1})"


def block_margin(model_config: ModelConfig, infer: InferConfig = InferConfig()) -> int:
    """Pixels of real context read on each side of a block: the network's reach (valid-mode margin plus the
    same-mode context), rounded up to the pooling grid so that window origins stay on it."""
    grid = 2 ** (model_config.depth - 1)
    reach = context_margin(model_config.depth, model_config.padding) + effective_context(model_config, infer)
    return int(math.ceil(max(reach, 1) / grid) * grid)


def aligned_block_size(block_size: int, model_config: ModelConfig) -> int:
    """``block_size`` rounded up to the pooling grid (block origins must sit on it)."""
    grid = 2 ** (model_config.depth - 1)
    return int(math.ceil(max(int(block_size), grid) / grid) * grid)


def plan_blocks(shape: Sequence[int], block_size: int, margin: int) -> list[Block]:
    """The blocks covering an image of ``shape`` (Y, X), row by row; the last row and column may be smaller."""
    height, width = (int(n) for n in shape[-2:])
    blocks = []
    rows, cols = math.ceil(height / block_size), math.ceil(width / block_size)
    for row in range(rows):
        for col in range(cols):
            y0, x0 = row * block_size, col * block_size
            y1, x1 = min(height, y0 + block_size), min(width, x0 + block_size)
            window = (max(0, y0 - margin), min(height, y1 + margin), max(0, x0 - margin), min(width, x1 + margin))
            blocks.append(Block(row * cols + col, row, col, (y0, y1, x0, x1), window))
    return blocks


# ------------------------------------------------------------------------------------------ reading


def _zarr_chunks(source) -> tuple[int, ...] | None:
    """The chunk shape of a zarr array (``None`` for anything else)."""
    if type(source).__module__.split(".")[0] != "zarr":
        return None
    return tuple(int(c) for c in source.chunks)


def _chunk_file(source, coords: tuple[int, ...]):
    """The file of a chunk of a zarr array in a local folder, else ``None`` (remote stores are not checked)."""
    from pathlib import Path

    root = getattr(source.store, "root", None)
    if root is None:
        return None
    key = source.metadata.encode_chunk_key(coords)
    return Path(root) / source.path / key if source.path else Path(root) / key


@dataclass(frozen=True)
class ImageRef:
    """An image named by its path and opened where it is read (once per process) with
    :func:`~unet_studio.core.io.open_zarr`: picklable, so that Dask workers open it themselves (an open
    TIFF file cannot travel)."""

    path: str
    axes: str | None = None
    missing_chunks: str = "error"

    def open(self):
        return _open_image(self.path, self.axes, self.missing_chunks)


@functools.lru_cache(maxsize=4)
def _open_image(path: str, axes: str | None, missing_chunks: str):
    from ..io import open_zarr

    return open_zarr(path, axes=axes, missing_chunks=missing_chunks)


def _opened(source):
    return source.open() if isinstance(source, ImageRef) else source


def read_region(source, region: tuple[int, int, int, int], missing_chunks: str = "error") -> np.ndarray:
    """Read ``(y0, y1, x0, x1)`` of a (C, Y, X) or (Y, X) array as (C, h, w), chunk by chunk for zarr arrays.

    A zarr chunk that cannot be decoded, or (with ``missing_chunks="error"``) is absent from a local store,
    raises :class:`ImageReadError` naming it. Zarr leaves out chunks whose pixels all equal the fill value,
    so ``missing_chunks="fill"`` reads those as the fill value instead.
    """
    y0, y1, x0, x1 = region
    source = _opened(source)
    if hasattr(source, "region"):  # a ZarrImage (core.io.open_zarr): it names missing or corrupt chunks itself
        return source.region(0, y0, y1, x0, x1)
    lead = (slice(None),) * (source.ndim - 2)
    chunks = _zarr_chunks(source)
    if chunks is None:
        data = np.asarray(source[lead + (slice(y0, y1), slice(x0, x1))])
        return data[None] if data.ndim == 2 else data
    out = np.empty(tuple(source.shape[:-2]) + (y1 - y0, x1 - x0), source.dtype)
    cy, cx = chunks[-2:]
    for ty in range(y0 // cy, math.ceil(y1 / cy)):
        for tx in range(x0 // cx, math.ceil(x1 / cx)):
            sy = slice(max(y0, ty * cy), min(y1, (ty + 1) * cy))
            sx = slice(max(x0, tx * cx), min(x1, (tx + 1) * cx))
            for lead_coords in np.ndindex(*(math.ceil(n / c) for n, c in zip(source.shape[:-2], chunks[:-2]))):
                coords = tuple(lead_coords) + (ty, tx)
                key = source.metadata.encode_chunk_key(coords)
                where = f"chunk {key} of {source.store}{'/' + source.path if source.path else ''}"
                file = _chunk_file(source, coords) if missing_chunks == "error" else None
                if file is not None and not file.exists():
                    raise ImageReadError(f"{where} is missing; copy the image again, or predict with missing "
                                         "chunks read as the fill value if the image was written that way")
                index = tuple(slice(c * n, (c + 1) * n) for c, n in zip(lead_coords, chunks[:-2])) + (sy, sx)
                try:
                    out[index[:-2] + (slice(sy.start - y0, sy.stop - y0), slice(sx.start - x0, sx.stop - x0))] = \
                        source[index]
                except Exception as exc:  # noqa: BLE001 - any decoding error of this chunk
                    raise ImageReadError(f"{where} cannot be read ({type(exc).__name__}: "
                                         f"{' '.join(str(exc).split())[:200]}); copy the image again") from None
    return out[None] if out.ndim == 2 else out


def image_shape(source) -> tuple[int, int, int]:
    """(C, Y, X) of a (C, Y, X) or (Y, X) array, or of level 0 of a single-slice ZarrImage."""
    source = _opened(source)
    if hasattr(source, "level_shape"):
        slices, channels, height, width = source.level_shape(0)
        if slices != 1:
            raise ImageReadError(f"'{source.path}' is a stack of {slices} slices; blockwise prediction takes one "
                                 "2-D image (with channels): predict it without --dask")
        return channels, height, width
    shape = tuple(int(n) for n in source.shape)
    if len(shape) not in (2, 3):
        raise ImageReadError(f"blockwise prediction takes a (C, Y, X) or (Y, X) image, not shape {shape}")
    return (1,) + shape if len(shape) == 2 else shape


@dataclass(frozen=True)
class PercentileScaler:
    """Per-channel ``(x - low) / (high - low)`` with fixed limits (from the whole image, not per block), as
    :func:`~unet_studio.core.io.normalize_percentile` scales: NaN becomes 0, +Inf 1, -Inf 0, a constant
    channel zeros. Picklable, so that it travels to Dask workers."""

    low: tuple[float, ...]
    high: tuple[float, ...]

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        out = np.empty(raw.shape, np.float32)
        for channel, values, lo, hi in zip(out, raw, self.low, self.high):
            if not hi > lo:
                channel[...] = 0.0
                continue
            scaled = (np.asarray(values, np.float64) - lo) / (hi - lo)
            channel[...] = np.nan_to_num(scaled, nan=0.0, posinf=1.0, neginf=0.0)
        return out


def percentile_scaler(sample: np.ndarray, low: float, high: float) -> PercentileScaler:
    """Limits from a (C, Y, X) ``sample`` of the image (a coarse pyramid level, or a strided read)."""
    sample = np.asarray(sample, np.float64)
    sample = sample[None] if sample.ndim == 2 else sample
    lows, highs = [], []
    for channel in sample:
        finite = channel[np.isfinite(channel)]
        lo, hi = (np.percentile(finite, [low, high]) if finite.size else (0.0, 0.0))
        lows.append(float(lo))
        highs.append(float(hi))
    return PercentileScaler(tuple(lows), tuple(highs))


def image_sample(source, max_pixels: int = 1 << 20) -> np.ndarray:
    """A strided (C, y, x) sample of about ``max_pixels`` per channel, read one band of chunk rows at a time
    (each chunk is decoded once, and only one band is in memory)."""
    source = _opened(source)
    if hasattr(source, "region"):  # a ZarrImage: the coarsest level that still has enough pixels
        level = max(k for k in range(len(source.levels))
                    if k == 0 or np.prod(source.level_shape(k)[2:]) >= min(max_pixels, 1 << 16))
        source = source.levels[level] if source.axes in ("yx", "cyx") else source.levels[0]
    height, width = source.shape[-2:]
    step = max(1, int(math.ceil(math.sqrt(height * width / max_pixels))))
    band = (_zarr_chunks(source) or (256,) * source.ndim)[-2]
    band = max(step, band // step * step)
    lead = (slice(None),) * (source.ndim - 2)
    parts = []
    for y in range(0, height, band):
        try:
            parts.append(np.asarray(source[lead + (slice(y, min(height, y + band)), slice(None))])[..., ::step, ::step])
        except Exception as exc:  # noqa: BLE001 - a bad chunk: the sample does without it, its blocks will fail
            log.warning("rows %d:%d left out of the intensity sample: %s: %s", y, min(height, y + band),
                        type(exc).__name__, " ".join(str(exc).split())[:160])
    if not parts:
        raise ImageReadError("no part of the image could be read for its intensity range; copy the image again")
    data = np.concatenate(parts, axis=-2)
    return data[None] if data.ndim == 2 else data


__all__ = ["Block", "ImageRef", "PercentileScaler", "aligned_block_size", "block_margin", "image_sample", "image_shape",
           "percentile_scaler", "plan_blocks", "read_region"]
