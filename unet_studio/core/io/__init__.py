"""Image input and output: read microscopy images lazily as ``(S, C, Y, X)``, write labels and maps atomically.

This package is the bottom layer of the core: it imports only :mod:`unet_studio.core.errors` (and its own
modules). Everything a caller needs is here; its modules are ``stack`` (reading), ``tiff`` and ``ome``
(TIFF and OME-TIFF specifics), ``write`` (writers), ``atomic`` (atomic writes), ``intensity``
(normalisation, pixel warnings) and ``memory`` (free-memory checks).
"""

from .atomic import atomic_path, check_writable, describe_write_error, write_bytes, write_text
from .intensity import normalize_percentile, pixel_warning
from .memory import available_ram, format_bytes, require_memory
from .ome import normalize_unit
from .stack import ImageStack, list_images, read_image, read_labels
from .tiff import open_tiff
from .write import (
    SUPPORTED_SUFFIXES,
    label_dtype,
    tiff_memmap,
    write_image,
    write_labels,
    write_mask,
    write_probabilities,
    write_tiff,
)

__all__ = [
    "SUPPORTED_SUFFIXES", "ImageStack", "atomic_path", "available_ram", "check_writable", "describe_write_error",
    "format_bytes", "label_dtype", "list_images", "normalize_percentile", "normalize_unit", "open_tiff",
    "pixel_warning", "read_image", "read_labels", "require_memory", "tiff_memmap", "write_bytes", "write_image",
    "write_labels", "write_mask", "write_probabilities", "write_text", "write_tiff",
]
