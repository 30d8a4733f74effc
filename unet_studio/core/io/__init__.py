"""Image input and output: read microscopy images lazily as ``(S, C, Y, X)``, write labels and maps atomically.

This package knows nothing of training or prediction; it imports only :mod:`unet_studio.core.errors`.
"""

from .atomic import atomic_path, check_writable, describe_write_error, write_bytes, write_text
from .intensity import normalize_percentile, pixel_warning
from .memory import available_ram, format_bytes, require_memory
from .stack import ImageStack, list_images, read_image, read_labels
from .tiff import normalize_unit, open_tiff, write_tiff
from .write import tiff_memmap, write_image, write_labels, write_mask, write_probabilities

__all__ = [
    "ImageStack", "atomic_path", "available_ram", "check_writable", "describe_write_error", "format_bytes",
    "list_images", "normalize_percentile", "normalize_unit", "open_tiff", "pixel_warning", "read_image",
    "read_labels", "require_memory", "tiff_memmap", "write_bytes", "write_image", "write_labels", "write_mask",
    "write_probabilities", "write_text", "write_tiff",
]
