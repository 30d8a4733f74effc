"""TIFF reading for :mod:`unet_studio.core.io.stack` (writing is in :mod:`.write`): axes from metadata, calibration, lazy slice access.

A TIFF series (tifffile's view of a multi-dimensional image) has axes such as ``"TZCYXS"``. This module
maps them onto the project's ``(S, C, Y, X)`` view: T and Z flatten into the stack axis S (T outer, Z
inner, whatever their order in the file), C and the samples S (RGB) into channels. Slices are read lazily:
through a read-only memory map when the series is stored uncompressed and contiguous, else page by page,
reading only the pages that hold the requested slice.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from ..errors import ImageReadError
from .ome import check_ome_files, normalize_unit, ome_calibration

log = logging.getLogger(__name__)

_STACK_ROLES = ("T", "Z")  # presentation order of the stack axes: T outer, Z inner
_CHANNEL_ROLES = ("C", "S")  # channel order: C outer, samples inner
_ALPHA = (1, 2)  # TIFF ExtraSamples: associated and unassociated alpha
_RESUNIT_CENTIMETER = 3
_COPY_AGAIN = "The copy or export was probably interrupted; copy or export the file again"


@dataclass
class TiffLayout:
    """What :func:`open_tiff` found: the parts of an ImageStack."""

    axes: str
    stack_axes: str
    shape: tuple[int, int, int, int]
    dtype: np.dtype
    pixel_size: tuple[float, float] | None
    unit: str
    channel_names: list[str]
    reader: TiffSliceReader = field(repr=False)
    warnings: list[str] = field(default_factory=list)  # what the person should know about how it was read


def read_error(path: Path, problem: str, advice: str) -> ImageReadError:
    """Return the project's error for an unreadable file: "Cannot read '<path>': <problem>. <advice>."."""
    return ImageReadError(f"Cannot read '{path}': {problem}. {advice.rstrip('.')}.")


@dataclass(frozen=True)
class _AxisPlan:
    """Positions, in the unsqueezed series axes, of the stack, channel and spatial axes."""

    stack: tuple[int, ...]  # T then Z
    stack_axes: str
    channel: tuple[int, ...]  # C then S
    index: tuple[object, ...]  # per axis: 0 (unused), a slice (kept) or None (stack, filled per slice)


def _plan_axes(path: Path, axes: str, shape: tuple[int, ...], samples_kept: int | None) -> _AxisPlan:
    roles: dict[str, int] = {}
    unknown: list[int] = []
    for pos, (letter, size) in enumerate(zip(axes, shape)):
        if letter in "YX" + "".join(_STACK_ROLES + _CHANNEL_ROLES) and letter not in roles:
            if size > 1 or letter in "YX":
                roles[letter] = pos
        elif size > 1:
            unknown.append(pos)
    if "Y" not in roles or "X" not in roles:
        raise read_error(path, f"the image has no Y and X axes (axes {axes!r}, shape {shape})",
                    "Save it again as a 2D image or stack, e.g. from Fiji as TIFF")
    if len(unknown) == 1 and not all(r in roles for r in _STACK_ROLES):
        # One unnamed leading axis (a plain multi-page TIFF) is a stack: Z unless Z is already taken.
        roles["Z" if "Z" not in roles else "T"] = unknown.pop()
    if unknown:
        names = ", ".join(f"{axes[p]}={shape[p]}" for p in unknown)
        raise read_error(
            path,
            f"the image has {len(shape)} dimensions (axes {axes!r}, shape {shape}) and the meaning of "
            f"{len(unknown)} of them ({names}) is unknown",
            "Save it from Fiji as an ImageJ hyperstack or as OME-TIFF so that the axes are named "
            "(time T, depth Z, channel C)",
        )
    stack = tuple(roles[r] for r in _STACK_ROLES if r in roles)
    channel = tuple(roles[r] for r in _CHANNEL_ROLES if r in roles)
    index: list[object] = [0] * len(axes)
    for pos in channel + (roles["Y"], roles["X"]):
        index[pos] = slice(None)
    if "S" in roles and samples_kept is not None:
        index[roles["S"]] = slice(0, samples_kept)  # alpha samples are the last ones; drop them
    for pos in stack:
        index[pos] = None
    stack_axes = "".join(r for r in _STACK_ROLES if r in roles)
    return _AxisPlan(stack, stack_axes, channel, tuple(index))


def series_axes_shape(tif, index: int = 0) -> tuple[str, tuple[int, ...]]:
    """The axes and shape of series ``index`` of an open ``tifffile.TiffFile``, length-1 axes kept.

    tifffile before 2026.5.2 gives them with ``get_axes(False)``/``get_shape(False)``; from 2026.5.2 on
    (the release that Python 3.12 and newer install) those are gone and ``tif.series(squeeze=False)`` is
    the unsqueezed view of the series.
    """
    series = tif.series[index]
    if hasattr(series, "get_axes") and hasattr(series, "get_shape"):
        return series.get_axes(False), tuple(series.get_shape(False))
    if callable(tif.series):
        unsqueezed = tif.series(squeeze=False)[index]
        return unsqueezed.axes, tuple(unsqueezed.shape)
    return series.axes, tuple(series.shape)


class TiffSliceReader:
    """Read one stack slice ``(C, Y, X)`` at a time from an open TIFF series.

    Parameters
    ----------
    tif : tifffile.TiffFile
        The open file; closed by :meth:`close`.
    series : tifffile.TiffPageSeries
        The series to read.
    plan : _AxisPlan
        Which axes of the series are stack, channel and spatial axes.
    memmap : numpy.memmap or None
        The series data, shaped like the unsqueezed series, when it is uncompressed and contiguous.
    """

    def __init__(self, tif, series, plan: _AxisPlan, memmap: np.ndarray | None) -> None:
        self._tif = tif
        self._series = series
        self._plan = plan
        self._memmap = memmap
        self._full_shape = series_axes_shape(tif)[1]
        self._n_lead = _n_page_axes(series, self._full_shape)
        self._stack_shape = tuple(self._full_shape[p] for p in plan.stack)
        self._lock = threading.Lock()  # one TiffFile file handle: serialise seeks and reads

    @property
    def is_memmapped(self) -> bool:
        """True when slices are read through a memory map of the file."""
        return self._memmap is not None

    def read(self, i: int) -> np.ndarray:
        """Return slice ``i`` of the stack as ``(C, Y, X)`` in the file's dtype (native byte order)."""
        coords = np.unravel_index(i, self._stack_shape) if self._stack_shape else ()
        index = list(self._plan.index)
        for pos, coord in zip(self._plan.stack, coords):
            index[pos] = int(coord)
        with self._lock:
            block = self._select(tuple(index))
        # ``block`` keeps the channel and Y/X axes in file order; bring channels first, C before S.
        kept = [p for p, ix in enumerate(index) if isinstance(ix, slice)]
        order = [kept.index(p) for p in self._plan.channel] + [kept.index(p) for p in kept
                                                               if p not in self._plan.channel]
        block = np.transpose(block, order)
        channels = math.prod(block.shape[: len(self._plan.channel)])
        out = block.reshape((channels,) + block.shape[-2:])
        if out.dtype == bool:
            out = out.astype(np.uint8)
        return np.ascontiguousarray(out, dtype=out.dtype.newbyteorder("="))

    def _select(self, index: tuple) -> np.ndarray:
        if self._memmap is not None:
            return np.array(self._memmap[index])
        n_lead = self._n_lead
        lead_shape = self._full_shape[:n_lead]
        ranges = [range(*ix.indices(size)) if isinstance(ix, slice) else (ix,)
                  for ix, size in zip(index[:n_lead], lead_shape)]
        kept_shape = tuple(len(r) for r, ix in zip(ranges, index) if isinstance(ix, slice))
        parts = []
        for combo in itertools.product(*ranges):
            page_number = int(np.ravel_multi_index(combo, lead_shape)) if n_lead else 0
            parts.append(self._read_page(page_number)[index[n_lead:]])
        return np.stack(parts).reshape(kept_shape + parts[0].shape)

    def _read_page(self, number: int) -> np.ndarray:
        page_shape = self._full_shape[self._n_lead:]
        page = self._series[number]
        if page is None:  # a plane missing from a multi-file OME-TIFF: tifffile also fills with zeros
            return np.zeros(page_shape, self._series.dtype)
        handle = page.parent.filehandle
        if not handle.closed:
            return page.asarray().reshape(page_shape)
        # Another file of a multi-file OME-TIFF: tifffile closed it after reading its page index.
        handle.open()
        try:
            return page.asarray().reshape(page_shape)
        finally:
            handle.close()

    def close(self) -> None:
        """Release the memory map and close the file."""
        self._memmap = None
        self._tif.close()


def _n_page_axes(series, full_shape: tuple[int, ...]) -> int:
    """Number of leading axes that enumerate the pages of ``series``."""
    page_size = series.keyframe.size
    for n in range(len(full_shape) + 1):
        if math.prod(full_shape[:n]) == len(series) and math.prod(full_shape[n:]) == page_size:
            return n
    raise ValueError(f"pages of shape {series.keyframe.shape} do not tile the series shape {full_shape}")


def open_tiff(path: Path) -> TiffLayout:
    """Open a TIFF and describe it; the file stays open in the returned reader.

    Raises
    ------
    ImageReadError
        The file is not a readable TIFF, is truncated, or has axes that cannot be interpreted.
    """
    tif = tifffile.TiffFile(path)
    try:
        # Before tif.series: building the series opens every file the OME-XML names.
        check_ome_files(path, tif.ome_metadata)
        return _describe(path, tif)
    except BaseException:
        tif.close()
        raise


def _describe(path: Path, tif) -> TiffLayout:
    if not tif.series:
        raise read_error(path, "the file is damaged: the TIFF holds no readable image", "Copy or export the file again")
    warnings = []
    series = tif.series[0]
    if len(tif.series) > 1:
        # Pages of different sizes (or several series) cannot form one stack: say what is left out.
        warnings.append(f"{path.name} holds {len(tif.series)} images of different sizes or kinds; only the "
                        f"first ({' x '.join(map(str, series.shape))}, {len(series)} page(s)) is read. Save "
                        "the images as separate files to use the others")
        log.warning("%s", warnings[-1])
    full_axes, full_shape = series_axes_shape(tif)
    if 0 in full_shape or series.keyframe.size == 0:
        raise read_error(path, f"the image has a dimension of size zero (shape {tuple(series.shape)})",
                    "The file holds no pixels; export the image again")
    dtype = np.dtype(series.dtype)
    if dtype.kind not in "biuf":
        raise read_error(path, f"pixels of type {dtype} are not supported",
                    "Convert the image to 8-bit, 16-bit or 32-bit (float) in Fiji and save it again")
    _check_imagej_planes(path, tif, full_axes, full_shape)
    keyframe = series.keyframe
    samples_kept = _samples_without_alpha(keyframe)
    plan = _plan_axes(path, full_axes, full_shape, samples_kept)
    memmap = _try_memmap(path, tif, series, full_shape)
    if memmap is None:
        _check_pages_in_file(path, series)
    reader = TiffSliceReader(tif, series, plan, memmap)
    n_stack = math.prod(full_shape[p] for p in plan.stack)
    channel_sizes = [full_shape[p] for p in plan.channel]
    if samples_kept is not None and "S" in full_axes and full_axes.index("S") in plan.channel:
        channel_sizes[plan.channel.index(full_axes.index("S"))] = samples_kept
    n_channels = math.prod(channel_sizes)
    shape = (n_stack, n_channels, full_shape[full_axes.index("Y")], full_shape[full_axes.index("X")])
    pixel_size, unit, ome_names = _calibration(tif, keyframe)
    names = _channel_names(tif, full_axes, full_shape, plan, n_channels, ome_names, keyframe)
    dtype = np.dtype(np.uint8) if dtype == bool else dtype.newbyteorder("=")
    return TiffLayout(series.axes, plan.stack_axes, shape, dtype, pixel_size, unit, names, reader, warnings)


def _samples_without_alpha(keyframe) -> int | None:
    extras = tuple(int(e) for e in (keyframe.extrasamples or ()))
    samples = int(keyframe.samplesperpixel)
    if samples > 1 and extras and extras[-1] in _ALPHA:
        alpha = len(extras) - len([e for e in extras if e not in _ALPHA])
        return max(samples - alpha, 1)
    return None


def _try_memmap(path: Path, tif, series, full_shape: tuple[int, ...]) -> np.ndarray | None:
    offset = series.dataoffset
    if offset is None or series.dtype == bool:
        return None
    dtype = np.dtype(tif.byteorder + series.dtype.char)
    end = offset + math.prod(full_shape) * dtype.itemsize
    size = path.stat().st_size
    if end > size:
        raise read_error(path, f"the file is truncated: the image needs {end} bytes, the file has {size}",
                    _COPY_AGAIN)
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=full_shape)


def _check_pages_in_file(path: Path, series) -> None:
    """Refuse a file whose first or last page points at data beyond its end (a cut-off copy)."""
    size = path.stat().st_size
    for number in {0, len(series) - 1}:
        try:
            page = series[number]
        except IndexError:  # tifffile found fewer pages than the series announces
            raise read_error(path, f"the file is truncated: page {number} is missing", _COPY_AGAIN) from None
        if page is None:
            continue
        key = series.keyframe  # TiffFrames share the keyframe's layout
        packed = key.bitspersample % 8 or int(key.photometric) == 6  # bit-packed or YCbCr subsampled
        if int(key.compression) == 1 and not packed and 0 < sum(page.databytecounts) < key.nbytes:
            raise read_error(path, f"the file is damaged: page {number} holds {sum(page.databytecounts)} bytes "
                        f"of pixels where its size needs {key.nbytes}", _COPY_AGAIN)
        ends = [o + c for o, c in zip(page.dataoffsets, page.databytecounts)]
        if ends and max(ends) > size:
            raise read_error(path, f"the file is truncated: page {number} needs {max(ends)} bytes, the file "
                        f"has {size}", _COPY_AGAIN)


def _check_imagej_planes(path: Path, tif, axes: str, shape: tuple[int, ...]) -> None:
    """Refuse an ImageJ file whose series has fewer planes than its metadata announce.

    tifffile falls back to reading the pages it finds when the ImageJ layout does not fit the file, which
    would silently turn a cut-off hyperstack into a single image.
    """
    if not tif.is_imagej:
        return
    announced = int((tif.imagej_metadata or {}).get("images", 0) or 0)
    planes = math.prod(n for a, n in zip(axes, shape) if a not in "YXS")
    if announced > planes:
        raise read_error(path, f"the file is truncated or damaged: its ImageJ metadata announce {announced} "
                    f"images, only {planes} can be read", _COPY_AGAIN)


def _calibration(tif, keyframe) -> tuple[tuple[float, float] | None, str, list[str]]:
    """Return ``(pixel_size (y, x) or None, unit, OME channel names)``."""
    if tif.is_ome and tif.ome_metadata:
        try:
            return ome_calibration(tif.ome_metadata)
        except (ElementTree.ParseError, ValueError) as exc:
            log.warning("%s: unreadable OME metadata (%s); ignoring it", tif.filehandle.path, exc)
    tags = keyframe.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None, "", []
    x_res, y_res = (_ratio(tags[name].value) for name in ("XResolution", "YResolution"))
    if not x_res or not y_res:
        return None, "", []
    if tif.is_imagej:
        unit = normalize_unit((tif.imagej_metadata or {}).get("unit", ""))
        if not unit:
            return None, "", []
        return (1.0 / y_res, 1.0 / x_res), unit, []
    if int(tags.get("ResolutionUnit").value if "ResolutionUnit" in tags else 0) == _RESUNIT_CENTIMETER:
        return (1e4 / y_res, 1e4 / x_res), "µm", []
    # Inch or no unit outside ImageJ is almost always a default 72/96/300 dpi, not a calibration.
    return None, "", []


def _ratio(value) -> float:
    try:
        numerator, denominator = value
        return float(numerator) / float(denominator) if denominator else 0.0
    except (TypeError, ValueError):
        return float(value or 0.0)


def _channel_names(tif, axes: str, shape: tuple[int, ...], plan: _AxisPlan, n_channels: int,
                   ome_names: list[str], keyframe) -> list[str]:
    if len(ome_names) == n_channels and all(ome_names):
        return list(ome_names)
    labels = (tif.imagej_metadata or {}).get("Labels") if tif.is_imagej else None
    if labels and "C" in axes and "S" not in [axes[p] for p in plan.channel]:
        # ImageJ stores one label per plane; a channel's name is the label of its first plane.
        c_pos = axes.index("C")
        lead = [s for s, a in zip(shape, axes) if a not in "YXS"]
        if math.prod(lead) == len(labels) and shape[c_pos] == n_channels:
            lead_axes = [a for a in axes if a not in "YXS"]
            names = [labels[int(np.ravel_multi_index(
                tuple(c if a == "C" else 0 for a in lead_axes), lead))] for c in range(n_channels)]
            if all(names):
                return [str(n) for n in names]
    if n_channels in (3, 4) and "S" in axes and int(keyframe.photometric) == 2:
        return ["red", "green", "blue", "alpha"][:n_channels]
    return [f"channel {i + 1}" for i in range(n_channels)]
