"""Image output: labels, probabilities, masks and plain images as files that Fiji and napari open as they
are, written atomically (temp file + ``os.replace``); and TIFFs written slice by slice through a memory map.

Also the table of supported file suffixes, which :mod:`unet_studio.core.io.stack` reads by.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from .atomic import atomic_path
from .ome import normalize_unit

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
FORMAT_OF_SUFFIX: dict[str, str] = {".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG",
                                     ".jpeg": "JPEG", ".bmp": "BMP"}


def label_dtype(max_value: int) -> np.dtype:
    """The smallest unsigned type that holds labels up to ``max_value``: uint8, uint16 or uint32."""
    if max_value < 256:
        return np.dtype(np.uint8)
    return np.dtype(np.uint16) if max_value < 65536 else np.dtype(np.uint32)


def _tiff_target(path: str | os.PathLike, what: str) -> Path:
    target = Path(path)
    if target.suffix.lower() not in (".tif", ".tiff"):
        raise ValueError(f"{what} are written as TIFF; give {target} a .tif or .tiff name")
    return target


def _stack_axis(stack_axis: str) -> str:
    if stack_axis not in ("Z", "T"):
        raise ValueError(f"stack_axis must be 'Z' or 'T', got {stack_axis!r}")
    return stack_axis


def write_labels(path: str | os.PathLike, labels: np.ndarray, pixel_size: tuple[float, float] | None = None,
                 unit: str | None = None, *, stack_axis: str = "Z") -> None:
    """Write integer labels as a TIFF that Fiji and napari open as it is.

    Parameters
    ----------
    path : str or os.PathLike
        Target ``.tif``; replaced atomically.
    labels : numpy.ndarray
        ``(Y, X)`` or ``(S, Y, X)`` non-negative integers (bool and integral floats accepted).
    pixel_size : tuple of float, optional
        ``(y, x)`` pixel size in ``unit`` (default µm), stored as the ImageJ calibration.
    unit : str, optional
        Unit of ``pixel_size``.
    stack_axis : {"Z", "T"}
        Axis name of a 3D stack.

    Notes
    -----
    Stored as uint8 when the largest label is below 256, uint16 below 65536 (both ImageJ TIFFs), uint32
    (plain TIFF, which ImageJ cannot store) beyond.

    Raises
    ------
    ImageWriteError
        The file cannot be written (read-only folder, full disk, ...); an existing file is left intact.
    """
    target = _tiff_target(path, "labels")
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise ValueError(f"labels must be (Y, X) or (S, Y, X), got shape {labels.shape}")
    if labels.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
        raise ValueError("labels must be integers; got fractional values")
    if labels.dtype.kind not in "biuf":
        raise ValueError(f"labels must be integers, got {labels.dtype}")
    if labels.size and labels.min() < 0:
        raise ValueError("labels must not be negative")
    data = labels.astype(label_dtype(int(labels.max()) if labels.size else 0), copy=False)
    write_tiff(target, data, "YX" if data.ndim == 2 else _stack_axis(stack_axis) + "YX", pixel_size, unit)


def write_probabilities(path: str | os.PathLike, probs: np.ndarray,
                        pixel_size: tuple[float, float] | None = None, unit: str | None = None, *,
                        class_names: Sequence[str] | None = None, stack_axis: str = "Z") -> None:
    """Write class probabilities as a float32 ImageJ hyperstack (one channel per class).

    Parameters
    ----------
    path : str or os.PathLike
        Target ``.tif``; replaced atomically.
    probs : numpy.ndarray
        ``(K, Y, X)`` (axes CYX) or ``(S, K, Y, X)`` (axes ZCYX or TCYX), values in 0..1.
    pixel_size, unit : optional
        Calibration, as in :func:`write_labels`.
    class_names : sequence of str, optional
        One name per class, stored as ImageJ slice labels.
    stack_axis : {"Z", "T"}
        Axis name of the stack of a 4D array.
    """
    target = _tiff_target(path, "probabilities")
    data = np.asarray(probs, dtype=np.float32)
    if data.ndim not in (3, 4):
        raise ValueError(f"probabilities must be (K, Y, X) or (S, K, Y, X), got shape {data.shape}")
    axes = "CYX" if data.ndim == 3 else _stack_axis(stack_axis) + "CYX"
    metadata: dict = {"mode": "grayscale", "min": 0.0, "max": 1.0}
    if class_names is not None:
        n_classes = data.shape[-3]
        if len(class_names) != n_classes:
            raise ValueError(f"{len(class_names)} class names for {n_classes} classes")
        metadata["Labels"] = [str(n) for n in class_names] * int(np.prod(data.shape[:-3]))
    write_tiff(target, data, axes, pixel_size, unit, metadata)


def write_mask(path: str | os.PathLike, mask: np.ndarray, pixel_size: tuple[float, float] | None = None,
               unit: str | None = None, *, stack_axis: str = "Z") -> None:
    """Write a binary mask as uint8 0/255 (every non-zero pixel of ``mask`` becomes 255).

    Parameters
    ----------
    path : str or os.PathLike
        Target ``.tif``; replaced atomically.
    mask : numpy.ndarray
        ``(Y, X)`` or ``(S, Y, X)``.
    pixel_size, unit, stack_axis : optional
        As in :func:`write_labels`.
    """
    target = _tiff_target(path, "masks")
    mask = np.asarray(mask)
    if mask.ndim not in (2, 3):
        raise ValueError(f"a mask must be (Y, X) or (S, Y, X), got shape {mask.shape}")
    data = np.where(mask != 0, np.uint8(255), np.uint8(0))
    write_tiff(target, data, "YX" if data.ndim == 2 else _stack_axis(stack_axis) + "YX", pixel_size, unit)


def write_image(path: str | os.PathLike, array: np.ndarray, axes: str = "YX",
                pixel_size: tuple[float, float] | None = None, unit: str | None = None) -> None:
    """Write an image atomically (for fixtures, exports and tests).

    Parameters
    ----------
    path : str or os.PathLike
        ``.tif``/``.tiff`` (ImageJ TIFF for uint8/uint16/float32 with axes in ImageJ order, plain TIFF
        with axes metadata otherwise), ``.png``, ``.jpg`` or ``.bmp`` (axes ``YX`` or ``YXS``).
    array : numpy.ndarray
        The pixels, one axis per letter of ``axes``.
    axes : str
        Letters from ``TZCYXS``, e.g. ``"YX"``, ``"ZYX"``, ``"TZCYX"``, ``"YXS"`` (RGB).
    pixel_size, unit : optional
        Calibration (TIFF only), as in :func:`write_labels`.
    """
    target = Path(path)
    array = np.asarray(array)
    if len(axes) != array.ndim or len(set(axes)) != len(axes) or set(axes) - set("TZCYXS"):
        raise ValueError(f"axes {axes!r} do not fit an array of shape {array.shape}")
    suffix = target.suffix.lower()
    if suffix in (".tif", ".tiff"):
        write_tiff(target, array, axes, pixel_size, unit)
        return
    if suffix not in SUPPORTED_SUFFIXES or axes not in ("YX", "YXS"):
        raise ValueError(f"{target.suffix} files take YX or YXS arrays; use .tif for axes {axes!r}")
    from PIL import Image

    with atomic_path(target) as tmp:
        Image.fromarray(array).save(tmp, format=FORMAT_OF_SUFFIX[suffix])


@contextlib.contextmanager
def tiff_memmap(path: str | os.PathLike, shape: tuple[int, ...], dtype: Any, axes: str,
                pixel_size: tuple[float, float] | None = None, unit: str | None = None,
                metadata: dict[str, Any] | None = None) -> Iterator[np.ndarray]:
    """A TIFF at ``path`` written through a memory map, atomically (ImageJ hyperstack for uint8, uint16 and
    float32 with axes in ImageJ order, calibrated like :func:`~unet_studio.core.io.stack.write_labels`).

    Yields a writable ``np.memmap`` of ``shape``; fill it slice by slice (the whole output never has to be
    in RAM). The file appears at ``path`` only when the block ends without an exception. ``metadata``: extra
    ImageJ metadata (``mode``, ``min``, ``max``, ``Labels``).
    """
    dtype = np.dtype(dtype)
    imagej = dtype in (np.uint8, np.uint16, np.float32) and "".join(a for a in "TZCYX" if a in axes) == axes
    kwargs: dict[str, Any] = {"imagej": imagej, "metadata": {"axes": axes, **((imagej and metadata) or {})}}
    if pixel_size:
        y, x = (float(v) for v in pixel_size)
        unit = normalize_unit(unit) or "µm"
        if imagej:
            kwargs["resolution"] = (1.0 / x, 1.0 / y)
            kwargs["metadata"]["unit"] = "micron" if unit == "µm" else unit
        elif unit == "µm":
            kwargs.update(resolution=(1e4 / x, 1e4 / y), resolutionunit="CENTIMETER")
    with atomic_path(path) as tmp:
        data = tifffile.memmap(tmp, shape=shape, dtype=dtype, **kwargs)
        # The file is sparse: on a full disk, writing into the map would kill the process (SIGBUS) when a
        # page is stored. Reserving its blocks now turns that into an error ("disk full") before any work.
        _reserve(tmp)
        try:
            yield data
            data.flush()
        finally:
            del data


def _reserve(path: os.PathLike) -> None:
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, os.fstat(fd).st_size)
    except OSError as exc:
        if exc.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            raise
    finally:
        os.close(fd)


def write_tiff(target: Path, data: np.ndarray, axes: str, pixel_size, unit, metadata=None) -> None:
    """Write ``data`` atomically as a zlib-compressed ImageJ TIFF, or a plain TIFF where ImageJ cannot.

    Parameters
    ----------
    target : Path
        The file to replace.
    data : numpy.ndarray
        Pixels with one axis per letter of ``axes``.
    axes : str
        E.g. ``"YX"``, ``"ZYX"``, ``"ZCYX"``. ImageJ needs them in ``TZCYXS`` order and uint8, uint16 or
        float32 pixels (RGB: uint8); other data go to a plain TIFF with the axes in its description.
    pixel_size, unit
        ``(y, x)`` calibration or None; stored as ImageJ unit + resolution (centimetres in a plain TIFF).
    metadata : dict, optional
        Extra ImageJ metadata (``mode``, ``min``, ``max``, ``Labels``).
    """
    imagej = (data.dtype in (np.uint8, np.uint16, np.float32)
              and "".join(a for a in "TZCYXS" if a in axes) == axes
              and ("S" not in axes or (data.dtype == np.uint8 and data.shape[-1] == 3)))
    kwargs: dict = {}
    md = {"axes": axes, **(metadata or {})}
    if pixel_size is not None:
        y, x = (float(v) for v in pixel_size)
        if not (x > 0 and y > 0):
            raise ValueError(f"pixel_size must be positive, got {pixel_size}")
        unit = normalize_unit(unit) or "µm"
        if imagej:
            kwargs["resolution"] = (1.0 / x, 1.0 / y)
            md["unit"] = "micron" if unit == "µm" else unit
        elif unit == "µm":
            kwargs.update(resolution=(1e4 / x, 1e4 / y), resolutionunit="CENTIMETER")
    if not imagej:
        md = {"axes": axes}
        log.info("%s: %s %s cannot be stored as ImageJ TIFF; writing a plain TIFF", target, data.dtype, axes)
    with atomic_path(target) as tmp:
        tifffile.imwrite(tmp, data, imagej=imagej, metadata=md, compression="zlib", **kwargs)
