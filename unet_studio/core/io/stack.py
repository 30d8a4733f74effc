"""Image reading: open any supported image lazily as an :class:`ImageStack` of ``(S, C, Y, X)``; read labels.

Readers accept 2D grey and RGB images (TIFF, PNG, JPEG, BMP), multi-page TIFF stacks, ImageJ hyperstacks,
OME-TIFF and OME-Zarr image folders (read lazily from level 0 through :mod:`~unet_studio.core.io.zarr_image`);
T and Z flatten into the stack axis S, channels and RGB samples into C. Every problem with an input file is
raised as :class:`~unet_studio.core.errors.ImageReadError` with a message that names the file,
the problem and what to do. Import from :mod:`unet_studio.core.io`, the package's public surface; the
names this module re-exports (writers, memory checks, normalisation) stay for callers not yet moved to it.
"""

from __future__ import annotations

import logging
import os
import weakref
from pathlib import Path

import numpy as np

from ..errors import ImageReadError
from .intensity import normalize_percentile, pixel_warning
from .tiff import open_tiff
from .tiff import read_error as _fail
from .write import (
    FORMAT_OF_SUFFIX,
    SUPPORTED_SUFFIXES,
    label_dtype,
    write_image,
    write_labels,
    write_mask,
    write_probabilities,
)
from .memory import available_ram, format_bytes, require_memory
from .zarr_image import ZARR_SUFFIXES, is_zarr_path, open_zarr, zarr_stack_parts

log = logging.getLogger(__name__)

_MAGIC = ((b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"),
          (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"))


class ImageStack:
    """A lazily read image: ``S`` slices of ``(C, Y, X)`` pixels in the file's dtype.

    Attributes
    ----------
    path : Path
        The file.
    axes : str
        The file's own axes, e.g. ``"TZCYX"``, ``"YXS"`` (RGB), ``"YX"``.
    stack_axes : str
        The axes flattened into S: ``""``, ``"Z"``, ``"T"`` or ``"TZ"`` (T outer).
    shape : tuple of int
        ``(S, C, Y, X)``.
    dtype : numpy.dtype
        The pixel type (native byte order).
    pixel_size : tuple of float or None
        ``(y, x)`` size of a pixel in ``unit``, when the file is calibrated.
    unit : str
        Unit of ``pixel_size`` (``"µm"`` for microns), ``""`` when uncalibrated.
    channel_names : list of str
        One name per channel.
    warnings : list of str
        What the person should know about how the file was read (e.g. the other images of a TIFF whose
        pages have different sizes are left out); each is also logged at WARNING. Front ends show them.

    Notes
    -----
    The file stays open until :meth:`close` (or the end of a ``with`` block); :meth:`get_slice` reads only
    the pages of that slice, so stacks larger than memory can be browsed.
    """

    def __init__(self, path: Path, axes: str, stack_axes: str, shape: tuple[int, int, int, int],
                 dtype: np.dtype, pixel_size: tuple[float, float] | None, unit: str,
                 channel_names: list[str], reader, warnings: list[str] | None = None) -> None:
        self.path = Path(path)
        self.axes = axes
        self.stack_axes = stack_axes
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.pixel_size = pixel_size
        self.unit = unit
        self.channel_names = list(channel_names)
        self.warnings = list(warnings or [])
        self._reader = reader
        self._closed = False
        self._finalizer = weakref.finalize(self, reader.close)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return (f"ImageStack({str(self.path)!r}, axes={self.axes!r}, stack_axes={self.stack_axes!r}, "
                f"shape={self.shape}, dtype={self.dtype})")

    @property
    def n_channels(self) -> int:
        """Number of channels C."""
        return self.shape[1]

    @property
    def slice_nbytes(self) -> int:
        """Bytes of one ``(C, Y, X)`` slice in the file's dtype."""
        return int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize

    def describe_size(self, whole: bool = False) -> str:
        """``"the image (512 x 512 pixels, 1 channel, uint8)"``, ``"one slice (...)"`` or ``"the whole stack (...)"``."""
        n_slices, channels, height, width = self.shape
        size = f"{height} x {width} pixels, {channels} channel{'s' * (channels != 1)}, {self.dtype}"
        if n_slices == 1:
            return f"the image ({size})"
        return f"the whole stack ({n_slices} slices of {size})" if whole else f"one slice ({size})"

    def get_slice(self, i: int) -> np.ndarray:
        """Return slice ``i`` as a new ``(C, Y, X)`` array of the file's dtype.

        Raises
        ------
        IndexError
            ``i`` is outside ``-len(self) .. len(self) - 1``.
        ImageReadError
            The slice cannot be decoded (a damaged or truncated file).
        """
        if self._closed:
            raise ValueError(f"the image {self.path} is closed")
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"slice {i} is out of range for {self.path} with {n} slices")
        # Reading a slice holds it (and, page by page, its parts) in memory: refuse one that cannot fit
        # instead of being killed by the system's out-of-memory handler halfway.
        require_memory(self.path, 2 * self.slice_nbytes, self.describe_size())
        try:
            data = self._reader.read(int(i) % n)
        except ImageReadError:
            raise
        except MemoryError:
            raise ImageReadError(f"Cannot read slice {i} of '{self.path}': not enough memory. Close other "
                                 "images or programs and try again.") from None
        except Exception as exc:
            raise ImageReadError(f"Cannot read slice {i} of '{self.path}': the file is damaged or "
                                 f"truncated ({exc}). Copy or export the file again.") from exc
        return data

    def asarray(self) -> np.ndarray:
        """Read every slice into one ``(S, C, Y, X)`` array (the whole image must fit in memory).

        Raises
        ------
        ImageReadError
            The image does not fit in memory (read it slice by slice instead), or is damaged.
        """
        require_memory(self.path, len(self) * self.slice_nbytes + self.slice_nbytes, self.describe_size(whole=True))
        try:
            out = np.empty(self.shape, self.dtype)
        except MemoryError:
            gib = np.prod(self.shape, dtype=float) * self.dtype.itemsize / 2**30
            raise ImageReadError(f"Cannot read '{self.path}': the image needs {gib:.1f} GiB, more memory "
                                 "than is free. Work on it slice by slice, or crop or downsample it in "
                                 "Fiji.") from None
        for i in range(len(self)):
            out[i] = self.get_slice(i)
        return out

    def close(self) -> None:
        """Close the file; the stack cannot be read afterwards."""
        self._closed = True
        self._finalizer()

    def __enter__(self) -> ImageStack:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _ArrayReader:
    """Reader for formats decoded whole (PNG, JPEG, BMP): holds ``(S, C, Y, X)`` in memory."""

    def __init__(self, data: np.ndarray) -> None:
        self._data = data

    def read(self, i: int) -> np.ndarray:
        return self._data[i].copy()

    def close(self) -> None:
        self._data = None


def _check_file(path: Path) -> str:
    """Return the format found in the file's first bytes; raise for everything that is not an image."""
    supported = ", ".join(SUPPORTED_SUFFIXES)
    if not path.exists():
        raise _fail(path, "the file does not exist", "Check the path and the spelling of the name")
    if path.is_dir():
        raise _fail(path, "this is a folder, not an image file", f"Choose an image file ({supported})")
    if not path.is_file():  # a named pipe would block the read below forever; a device never ends
        raise _fail(path, "this is not a regular file (a named pipe, a device or a socket)",
                    f"Choose an image file ({supported})")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        what = f"the extension '{path.suffix}'" if suffix else "no file extension"
        raise _fail(path, f"the file has {what}, which is not a supported image format",
                    f"Supported: {supported}; convert the image to TIFF, e.g. in Fiji with File > Save As > "
                    "Tiff")
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        raise _fail(path, f"the file cannot be opened ({exc.strerror or exc})",
                    "Check that it is readable and not locked by another program") from None
    if size == 0:
        raise _fail(path, "the file is empty (0 bytes)",
                    "It was probably not written completely; copy or export it again")
    found = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
    if found is None:
        text = b"\x00" not in head and head.decode("utf-8", errors="replace").count("\ufffd") < 4
        problem = (f"the file contains text, not a {FORMAT_OF_SUFFIX[suffix]} image" if text else
                   f"the file is not a {FORMAT_OF_SUFFIX[suffix]} image (its content is not a known image "
                   "format)")
        raise _fail(path, problem, "Check that the right file was chosen, or export the image again")
    if found != FORMAT_OF_SUFFIX[suffix]:
        log.warning("%s is a %s file despite its extension %s; reading it as %s", path, found,
                    path.suffix, found)
    return found


def read_image(path: str | os.PathLike, axes: str | None = None, missing_chunks: str = "error") -> ImageStack:
    """Open an image for reading slice by slice.

    Parameters
    ----------
    path : str or os.PathLike
        A TIFF (also multi-page, ImageJ hyperstack, OME-TIFF), PNG, JPEG or BMP file, or an OME-Zarr image
        folder (``NAME.ome.zarr``, NGFF 0.4/0.5; read lazily from its full-resolution level).
    axes : str, optional
        The axes of a plain zarr array folder (no OME metadata), e.g. ``"yx"`` or ``"czyx"``.
    missing_chunks : str
        For a zarr folder: ``"error"`` refuses a slice whose chunks are missing, ``"fill"`` reads them as zeros
        (see :func:`~unet_studio.core.io.zarr_image.open_zarr`).

    Returns
    -------
    ImageStack
        Lazy ``(S, C, Y, X)`` view; close it (or use ``with``) to release the file.

    Raises
    ------
    ImageReadError
        The file is missing, empty, not an image, damaged, or has axes that cannot be interpreted.
    """
    if is_zarr_path(path):
        return ImageStack(**zarr_stack_parts(open_zarr(path, axes=axes, missing_chunks=missing_chunks)))
    return _open(Path(path), labels=False)


def _open(path: Path, labels: bool) -> ImageStack:
    found = _check_file(path)
    try:
        if found == "TIFF":
            layout = open_tiff(path)
            return ImageStack(path, layout.axes, layout.stack_axes, layout.shape, layout.dtype,
                              layout.pixel_size, layout.unit, layout.channel_names, layout.reader,
                              layout.warnings)
        return _open_pillow(path, labels)
    except ImageReadError:
        raise
    except MemoryError:
        raise _fail(path, "not enough memory to read it", "Close other images or programs") from None
    except Exception as exc:
        raise _fail(path, f"the file is damaged, truncated or not a valid {found} ({exc})",
                    "Copy or export the file again") from exc


def _open_pillow(path: Path, labels: bool) -> ImageStack:
    from PIL import Image, ImageOps  # scikit-image depends on Pillow; imported here to keep `import core` light

    try:
        img = Image.open(path)
    except Image.DecompressionBombError:
        raise _fail(path, "the image is larger than Pillow reads safely", "Convert it to TIFF, e.g. in "
                    "Fiji, and open the TIFF") from None
    with img:
        # A camera stores a portrait photo sideways with an EXIF orientation; show it as viewers do.
        img = ImageOps.exif_transpose(img)
        mode = img.mode
        if mode == "P" and not labels:
            img = img.convert("RGB")
        elif mode in ("RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV", "PA"):
            img = img.convert("RGB")
        elif mode in ("LA", "La"):
            img = img.convert("L")
        data = np.asarray(img)
    if data.dtype == bool:
        data = data.astype(np.uint8) * (1 if labels else 255)
    data = data.astype(data.dtype.newbyteorder("="), copy=False)
    if 0 in data.shape:
        raise _fail(path, f"the image has a dimension of size zero (shape {data.shape})",
                    "Export the image again")
    rgb = data.ndim == 3
    stack = np.ascontiguousarray(np.moveaxis(data, -1, 0) if rgb else data[np.newaxis])[np.newaxis]
    names = ["red", "green", "blue"] if rgb else ["channel 1"]
    return ImageStack(path, "YXS" if rgb else "YX", "", stack.shape, stack.dtype, None, "", names,
                      _ArrayReader(stack))


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Read a label image: integers, 0 = unlabelled.

    Parameters
    ----------
    path : str or os.PathLike
        A single-channel TIFF or PNG (palette PNGs give their palette indices).

    Returns
    -------
    numpy.ndarray
        Integer labels ``(Y, X)``, or ``(S, Y, X)`` for a stack. Integral float files are converted to the
        smallest unsigned type that holds them.

    Raises
    ------
    ImageReadError
        The file cannot be read (see :func:`read_image`), or holds colour, negative or fractional values.
    """
    path = Path(path)
    advice = "Save the labels as a single-channel 8-bit or 16-bit TIFF (0 = unlabelled, 1..K = classes)"
    if path.suffix.lower() in (".jpg", ".jpeg"):
        raise _fail(path, "JPEG compression changes pixel values, so it cannot hold labels", advice)
    with _open(path, labels=True) as stack:
        if stack.n_channels != 1:
            kind = "is an RGB (colour) image" if "S" in stack.axes else f"has {stack.n_channels} channels"
            raise _fail(path, f"the label image {kind}; labels must be one channel of class numbers",
                        advice)
        data = stack.asarray()[:, 0]
    data = _integer_labels(path, data, advice)
    return data[0] if len(data) == 1 else data


def _integer_labels(path: Path, data: np.ndarray, advice: str) -> np.ndarray:
    if data.dtype.kind == "f":
        if not np.isfinite(data).all():
            raise _fail(path, "the label image contains NaN or infinite values", advice)
        fractional = data[data != np.round(data)]
        if fractional.size:
            raise _fail(path, f"the label image holds fractional values (e.g. {fractional.flat[0]:g}); it "
                        "looks like an intensity or probability image, not labels", advice)
    if data.size and data.min() < 0:
        raise _fail(path, f"the label image holds negative values (minimum {data.min():g})", advice)
    if data.dtype.kind in "ui":
        return data
    return data.astype(label_dtype(int(data.max()) if data.size else 0))


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Return the images of ``folder`` (supported files, ``.ome.zarr``/``.zarr`` image folders; hidden ones
    skipped), sorted by name.

    Raises
    ------
    ImageReadError
        ``folder`` does not exist or is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        problem = "it is a file, not a folder" if folder.exists() else "the folder does not exist"
        raise ImageReadError(f"Cannot list images in '{folder}': {problem}. Choose a folder of images.")
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".") and (
        (p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES)
        or (p.name.lower().endswith(ZARR_SUFFIXES) and p.is_dir()))), key=lambda p: p.name)


__all__ = [
    "SUPPORTED_SUFFIXES", "ImageStack", "available_ram", "format_bytes", "list_images", "normalize_percentile",
    "pixel_warning", "read_image", "read_labels", "require_memory", "write_image", "write_labels", "write_mask",
    "write_probabilities",
]
