"""Image input and output: read microscopy images lazily as ``(S, C, Y, X)``, write labels and maps.

Readers accept 2D grey and RGB images (TIFF, PNG, JPEG, BMP), multi-page TIFF stacks, ImageJ hyperstacks
and OME-TIFF; T and Z flatten into the stack axis S, channels and RGB samples into C. Every problem with an
input file is raised as :class:`~unet_studio.core.errors.ImageReadError` with a message that names the file,
the problem and what to do. Writers produce TIFFs that Fiji and napari open as they are, atomically.
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import ImageReadError
from .io_tiff import open_tiff, write_tiff
from .io_tiff import read_error as _fail

log = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
_FORMAT_OF_SUFFIX = {".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG",
                     ".bmp": "BMP"}
_MAGIC = ((b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"),
          (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"BM", "BMP"))
_PERCENTILE_SAMPLES = 1 << 20  # percentiles of a big channel come from about this many pixels


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

    Notes
    -----
    The file stays open until :meth:`close` (or the end of a ``with`` block); :meth:`get_slice` reads only
    the pages of that slice, so stacks larger than memory can be browsed.
    """

    def __init__(self, path: Path, axes: str, stack_axes: str, shape: tuple[int, int, int, int],
                 dtype: np.dtype, pixel_size: tuple[float, float] | None, unit: str,
                 channel_names: list[str], reader) -> None:
        self.path = Path(path)
        self.axes = axes
        self.stack_axes = stack_axes
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.pixel_size = pixel_size
        self.unit = unit
        self.channel_names = list(channel_names)
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


def available_ram() -> int:
    """Bytes of memory this process can still use: ``MemAvailable`` (Linux), capped by a cgroup limit.

    Elsewhere the free physical pages, when the system says; a very large number when nothing is known
    (then nothing is refused on memory grounds).
    """
    free = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    if free is None:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    free = 1 << 62 if free is None else free
    with contextlib.suppress(OSError, ValueError, IndexError):  # a container's memory limit (cgroup v2)
        cgroup = Path("/sys/fs/cgroup")
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            used = int((cgroup / "memory.current").read_text().strip())
            # The page cache counts as used but is given back on demand: only the working set is taken.
            stat = dict(line.split()[:2] for line in (cgroup / "memory.stat").read_text().splitlines())
            used -= int(stat.get("inactive_file", 0))
            free = min(free, max(int(limit) - used, 0))
    return int(free)


def format_bytes(n: float) -> str:
    """``1.5 GiB``, ``300 MiB``: sizes as a person reads them."""
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{max(n / 2**20, 0.1):.1f} MiB"


def require_memory(path: str | os.PathLike, needed: int, what: str, doing: str = "reading") -> None:
    """Raise :class:`ImageReadError` when ``needed`` bytes are more than the memory available now.

    ``what`` names the data (``"the image (40000 x 40000 pixels, ...)"``), ``doing`` what needs it.
    """
    free = available_ram()
    if needed > free:
        raise _fail(Path(path), f"{doing} {what} needs about {format_bytes(needed)} of memory, but only "
                    f"{format_bytes(free)} is available",
                    "Crop or downsample the image (e.g. in Fiji with Image > Crop or Image > Scale) or split "
                    "it into smaller files, close other programs, or use a computer with more memory")


def pixel_warning(data: np.ndarray) -> str:
    """A sentence about pixel values that make a result doubtful (NaN or infinite values, a constant image), or ``""``.

    The tools go on with such an image (NaN counts as the darkest value, +Inf as the brightest; a constant
    image normalises to zeros), but the person should know.
    """
    data = np.asarray(data)
    if data.size == 0:
        return ""
    problems = []
    finite = None
    if data.dtype.kind == "f":
        finite_mask = np.isfinite(data)
        bad = int(data.size - np.count_nonzero(finite_mask))
        if bad:
            problems.append(f"{bad} pixel{'s' * (bad != 1)} {'are' if bad != 1 else 'is'} NaN or infinite "
                            "(read as the darkest value, +Inf as the brightest); replace them, e.g. in Fiji "
                            "with Process > Math > Remove NaNs, if that is wrong")
            finite = data[finite_mask]
    values = data if finite is None else finite
    if values.size == 0:
        problems.append("no pixel has a finite value: there is nothing to see or segment")
    elif values.min() == values.max():
        problems.append(f"the image is constant (every pixel is {values.flat[0]:g}): there is nothing to "
                        "segment; check that this is the right file and that it was exported correctly")
    return "; ".join(problems)


def _check_file(path: Path) -> str:
    """Return the format found in the file's first bytes; raise for everything that is not an image."""
    supported = ", ".join(SUPPORTED_SUFFIXES)
    if not path.exists():
        raise _fail(path, "the file does not exist", "Check the path and the spelling of the name")
    if path.is_dir():
        raise _fail(path, "this is a folder, not an image file", f"Choose an image file ({supported})")
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
        problem = (f"the file contains text, not a {_FORMAT_OF_SUFFIX[suffix]} image" if text else
                   f"the file is not a {_FORMAT_OF_SUFFIX[suffix]} image (its content is not a known image "
                   "format)")
        raise _fail(path, problem, "Check that the right file was chosen, or export the image again")
    if found != _FORMAT_OF_SUFFIX[suffix]:
        log.warning("%s is a %s file despite its extension %s; reading it as %s", path, found,
                    path.suffix, found)
    return found


def read_image(path: str | os.PathLike) -> ImageStack:
    """Open an image for reading slice by slice.

    Parameters
    ----------
    path : str or os.PathLike
        A TIFF (also multi-page, ImageJ hyperstack, OME-TIFF), PNG, JPEG or BMP file.

    Returns
    -------
    ImageStack
        Lazy ``(S, C, Y, X)`` view; close it (or use ``with``) to release the file.

    Raises
    ------
    ImageReadError
        The file is missing, empty, not an image, damaged, or has axes that cannot be interpreted.
    """
    return _open(Path(path), labels=False)


def _open(path: Path, labels: bool) -> ImageStack:
    found = _check_file(path)
    try:
        if found == "TIFF":
            layout = open_tiff(path)
            return ImageStack(path, layout.axes, layout.stack_axes, layout.shape, layout.dtype,
                              layout.pixel_size, layout.unit, layout.channel_names, layout.reader)
        return _open_pillow(path, labels)
    except ImageReadError:
        raise
    except MemoryError:
        raise _fail(path, "not enough memory to read it", "Close other images or programs") from None
    except Exception as exc:
        raise _fail(path, f"the file is damaged, truncated or not a valid {found} ({exc})",
                    "Copy or export the file again") from exc


def _open_pillow(path: Path, labels: bool) -> ImageStack:
    from PIL import Image  # scikit-image depends on Pillow; imported here to keep `import core` light

    try:
        img = Image.open(path)
    except Image.DecompressionBombError:
        raise _fail(path, "the image is larger than Pillow reads safely", "Convert it to TIFF, e.g. in "
                    "Fiji, and open the TIFF") from None
    with img:
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
    return data.astype(_label_dtype(int(data.max()) if data.size else 0))


def _label_dtype(max_value: int) -> np.dtype:
    if max_value < 256:
        return np.dtype(np.uint8)
    return np.dtype(np.uint16) if max_value < 65536 else np.dtype(np.uint32)


def normalize_percentile(image: np.ndarray, low: float = 1.0, high: float = 99.8) -> np.ndarray:
    """Scale each channel so that its ``low`` percentile maps to 0 and its ``high`` percentile to 1.

    Parameters
    ----------
    image : numpy.ndarray
        ``(C, Y, X)`` (or ``(Y, X)``, treated as one channel) of any real dtype.
    low, high : float
        Percentiles, ``0 <= low < high <= 100``.

    Returns
    -------
    numpy.ndarray
        float32 of the same shape, not clipped. Percentiles come from the finite pixels only (a subsample of
        about a million pixels on big channels); NaN becomes 0, +Inf 1 and -Inf 0. A constant channel (or one
        with no finite pixel) becomes zeros.
    """
    if not 0.0 <= low < high <= 100.0:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"expected a (C, Y, X) or (Y, X) image, got shape {image.shape}")
    out = np.array(image[np.newaxis] if image.ndim == 2 else image, dtype=np.float32, copy=True)
    for channel in out:
        flat = channel.reshape(-1)
        sample = flat[:: max(1, flat.size // _PERCENTILE_SAMPLES)]
        finite_mask = np.isfinite(sample)
        sample = sample if finite_mask.all() else sample[finite_mask]
        if sample.size == 0:
            channel[...] = 0.0
            continue
        lo, hi = (float(v) for v in np.percentile(sample, (low, high)))
        if not np.isfinite(channel).all():
            np.nan_to_num(channel, copy=False, nan=lo, posinf=hi, neginf=lo)
        span = hi - lo
        if not span > 1e-20 * max(abs(lo), abs(hi), 1e-30):
            channel[...] = 0.0
            continue
        channel -= np.float32(lo)
        channel *= np.float32(1.0 / span)
    return out[0] if image.ndim == 2 else out


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
    data = labels.astype(_label_dtype(int(labels.max()) if labels.size else 0), copy=False)
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
        Image.fromarray(array).save(tmp, format=_FORMAT_OF_SUFFIX[suffix])


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Return the image files of ``folder`` (supported suffixes, hidden files skipped), sorted by name.

    Raises
    ------
    ImageReadError
        ``folder`` does not exist or is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        problem = "it is a file, not a folder" if folder.exists() else "the folder does not exist"
        raise ImageReadError(f"Cannot list images in '{folder}': {problem}. Choose a folder of images.")
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".") and p.is_file()
                   and p.suffix.lower() in SUPPORTED_SUFFIXES), key=lambda p: p.name)
