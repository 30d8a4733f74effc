"""Whether two images are of the same kind: one model can learn both, or they want separate projects.

Qt-free. A project trains one model on all its images with one set of classes, so an electron micrograph
and a fluorescence image of nuclei in one project mislead both the model and the person. When someone
opens an image while a project with images is open, the window compares the new image's
:class:`ImageKind` with those of the project (:func:`kind_differences`) and, when they differ, offers a
new project. What counts as another kind: another number of channels, another number family (integer
vs floating point: raw counts vs processed data), an image size more than :data:`SIZE_RATIO` times
larger or smaller in pixels, or a calibrated pixel size more than :data:`PIXEL_SIZE_RATIO` times
larger or smaller (another magnification or another microscope), or another look: a dark background
with bright objects (fluorescence) against a bright background (electron microscopy, bright field), judged
from the median of one slice's intensities after percentile scaling (:func:`background_of`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..core.errors import UNetStudioError

__all__ = ["ImageKind", "PIXEL_SIZE_RATIO", "SIZE_RATIO", "background_of", "dtype_family", "kind_differences"]

#: Pixel counts further apart than this (4x per side) are another size class (a crop of the same data
#: is usually within it; a tile of a slide scan against a camera frame is not).
SIZE_RATIO = 16.0
#: Calibrated pixel sizes further apart than this are another magnification.
PIXEL_SIZE_RATIO = 4.0

#: Median of the percentile-scaled intensities below which the background is dark (fluorescence: nuclei
#: images of ../shared/data score 0.01-0.06), and above which it is bright (EM slices of ISBI 2012: 0.58);
#: between the two, the look is not used.
DARK_BELOW, BRIGHT_ABOVE = 0.2, 0.4
#: Slices larger than this are not read to judge their look (opening must stay quick).
LOOK_MAX_BYTES = 64 * 2**20

_TO_MICRONS = {"nm": 1e-3, "nanometer": 1e-3, "µm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0,
               "micrometer": 1.0, "mm": 1e3, "millimeter": 1e3}


def background_of(plane) -> str | None:
    """``"dark"``, ``"bright"`` or None (in between, or flat) for one image plane (Y, X).

    The plane is subsampled to at most about 256 x 256 pixels and scaled between its 0.5th and 99.5th
    percentiles; the median of that says whether most pixels (the background) are dark or bright.
    """
    plane = np.asarray(plane)
    if plane.ndim != 2 or plane.size == 0:
        return None
    step = max(1, int(np.ceil(max(plane.shape) / 256)))
    values = plane[::step, ::step].astype(np.float64).ravel()
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    low, high = np.percentile(values, [0.5, 99.5])
    if not high > low:
        return None
    median = (np.median(values) - low) / (high - low)
    return "dark" if median < DARK_BELOW else "bright" if median > BRIGHT_ABOVE else None


def dtype_family(dtype) -> str:
    """``"integer"`` (booleans and integers of any width: raw detector counts), ``"float"`` or ``"other"``."""
    dtype = np.dtype(dtype)
    if dtype.kind in "biu":
        return "integer"
    if dtype.kind == "f":
        return "float"
    return "other"


@dataclass(frozen=True)
class ImageKind:
    """What matters to a model about an image: channels, number family, size and pixel size.

    Parameters
    ----------
    channels : int
        Channels per pixel.
    family : str
        :func:`dtype_family` of the pixels.
    height, width : int
        Size of one slice in pixels.
    pixel_um : float or None
        Size of a pixel in microns, when the file is calibrated in a known unit.
    background : str or None
        :func:`background_of` its middle slice: "dark", "bright" or None (unknown).
    """

    channels: int
    family: str
    height: int
    width: int
    pixel_um: float | None = None
    background: str | None = None

    @classmethod
    def of(cls, shape, dtype, pixel_size=None, unit: str = "") -> ImageKind:
        """The kind of an image of ``shape`` (S, C, Y, X) and ``dtype``, calibrated by ``pixel_size`` in ``unit``."""
        _, channels, height, width = (int(n) for n in shape)
        scale = _TO_MICRONS.get((unit or "").strip().lower().replace("μ", "µ"))
        pixel_um = None
        if pixel_size and scale is not None and float(pixel_size[-1]) > 0:
            pixel_um = float(pixel_size[-1]) * scale
        return cls(channels, dtype_family(dtype), height, width, pixel_um)

    @classmethod
    def of_stack(cls, stack) -> ImageKind:
        """The kind of a :class:`~unet_studio.core.io.ImageStack`: its header, and the look of its middle
        slice's first channel when that slice is at most :data:`LOOK_MAX_BYTES`."""
        kind = cls.of(stack.shape, stack.dtype, stack.pixel_size, stack.unit)
        background = None
        if stack.slice_nbytes <= LOOK_MAX_BYTES:
            try:
                background = background_of(stack.get_slice(len(stack) // 2)[0])
            except (OSError, ValueError, UNetStudioError):  # unreadable slice: open_image says why
                background = None
        return replace(kind, background=background)

    def describe(self) -> str:
        """In words, e.g. "1 channel, integer pixels, 256 x 256"."""
        channels = f"{self.channels} channel{'s' if self.channels != 1 else ''}"
        pixel = f", {self.pixel_um:.3g} µm pixels" if self.pixel_um is not None else ""
        look = f", {self.background} background" if self.background else ""
        return f"{channels}, {self.family} pixels, {self.width} x {self.height}{pixel}{look}"


def kind_differences(new: ImageKind, old: ImageKind) -> list[str]:
    """How ``new`` differs in kind from ``old``, one short phrase each; empty when they are of the same kind.

    Examples
    --------
    >>> kind_differences(ImageKind(3, "integer", 256, 256), ImageKind(1, "integer", 256, 256))
    ['3 channels instead of 1']
    """
    reasons = []
    if new.channels != old.channels:
        reasons.append(f"{new.channels} channel{'s' if new.channels != 1 else ''} instead of {old.channels}")
    if new.family != old.family:
        reasons.append(f"{new.family} pixels instead of {old.family}")
    ratio = (new.height * new.width) / max(old.height * old.width, 1)
    if ratio > SIZE_RATIO or ratio < 1 / SIZE_RATIO:
        reasons.append(f"{new.width} x {new.height} pixels instead of {old.width} x {old.height}")
    if new.pixel_um is not None and old.pixel_um is not None:
        scale = new.pixel_um / old.pixel_um
        if scale > PIXEL_SIZE_RATIO or scale < 1 / PIXEL_SIZE_RATIO:
            reasons.append(f"{new.pixel_um:.3g} µm pixels instead of {old.pixel_um:.3g} µm")
    if new.background and old.background and new.background != old.background:
        looks = {"dark": "a dark background (fluorescence-like)",
                 "bright": "a bright background (electron microscopy or bright field-like)"}
        reasons.append(f"{looks[new.background]} instead of {looks[old.background].split(' (')[0]}")
    return reasons
