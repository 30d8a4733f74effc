"""The pixel size of the session's images: the file's own calibration, else the one the person set.

A calibrated file (ImageJ, OME-TIFF) always wins; for an uncalibrated image the person may set a pixel size,
which is stored in the project's entry of the image (``project.json``), drawn by the scale bar and used by
File > Export for measurements in physical units.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import UNetStudioError
from ..core.project import clean_pixel_size

if TYPE_CHECKING:
    from .project_files import ImageState
    from .session import Session

__all__ = ["image_calibration", "set_pixel_size"]


def image_calibration(state: ImageState | None) -> tuple[tuple[float, float] | None, str, bool]:
    """``(pixel_size (y, x) or None, unit, from_file)`` of an image of the session."""
    if state is None:
        return None, "", False
    stack = state.stack
    if getattr(stack, "pixel_size", None):
        return tuple(stack.pixel_size), stack.unit or "", True
    return state.entry.pixel_size, state.entry.unit if state.entry.pixel_size else "", False


def set_pixel_size(session: Session, size: float, unit: str, image_index: int | None = None) -> bool:
    """Set (size > 0) or clear (size 0) the pixel size of an uncalibrated image; True when it changed.

    Raises
    ------
    UNetStudioError
        The image's file has its own calibration, or the size or unit is not a pixel size.
    """
    index = session.current_index if image_index is None else image_index
    if not 0 <= index < len(session.images):
        raise UNetStudioError("open an image first, then set its pixel size")
    state = session.images[index]
    if image_calibration(state)[2]:
        raise UNetStudioError(f"{state.name} has its pixel size in its file; change it there (e.g. Fiji's "
                              "Image > Properties) and add the image again")
    if size:
        try:
            pixel_size, unit = clean_pixel_size(size, unit)
        except ValueError as exc:
            raise UNetStudioError(f"{exc}; type the width of one pixel, e.g. 0.65 µm") from None
    else:
        pixel_size, unit = None, ""
    if (state.entry.pixel_size, state.entry.unit) == (pixel_size, unit):
        return False
    state.entry.pixel_size, state.entry.unit = pixel_size, unit
    session.saving.project_edited()  # saved with project.json, autosaved soon
    session.saving.update_dirty()
    return True
