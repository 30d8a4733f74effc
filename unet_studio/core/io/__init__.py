"""Image input and output: read microscopy images lazily as ``(S, C, Y, X)``, write labels and maps atomically.

This package is the bottom layer of the core: it imports only :mod:`unet_studio.core.errors` (and its own
modules). Everything a caller needs is here; its modules are ``stack`` (reading), ``tiff`` and ``ome``
(TIFF and OME-TIFF specifics), ``write`` (writers), ``atomic`` (atomic writes), ``intensity``
(normalisation, pixel warnings), ``memory`` (free-memory checks), ``zarr_image``/``zarr_meta`` (OME-Zarr
and tiled-TIFF region reads) and ``zarr_write`` (OME-Zarr writing with a pyramid).
"""

from .atomic import atomic_path, check_writable, describe_write_error, write_bytes, write_text
from .intensity import normalize_percentile, pixel_warning
from .memory import available_ram, format_bytes, require_memory
from .ome import normalize_unit
from .stack import ImageStack, list_images, read_image, read_labels
from .tiff import open_tiff
from .zarr_image import NEEDS_ZARR, ZARR_SUFFIXES, ZarrImage, is_zarr_path, micrometres, open_zarr, zarr_stem
from .zarr_meta import open_tiff_regions
from .zarr_write import (
    atomic_zarr,
    build_pyramid,
    create_ome_zarr,
    downsample_2x,
    holds_data,
    ome_zarr_output,
    write_ome_zarr,
)
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
    # OME-Zarr and region reads (zarr_image, zarr_meta, zarr_write)
    "NEEDS_ZARR", "ZARR_SUFFIXES", "ZarrImage", "atomic_zarr", "build_pyramid", "create_ome_zarr", "downsample_2x",
    "holds_data", "is_zarr_path", "micrometres", "ome_zarr_output", "open_tiff_regions", "open_zarr", "write_ome_zarr",
    "zarr_stem",
]
