"""OME-XML in a TIFF: the calibration and channel names it holds, and the files it names.

A multi-file OME-TIFF names its other files in ``<UUID FileName="...">`` elements, and tifffile opens them
when it builds the image series. The XML comes from whoever wrote the file, so a file from someone else
could make the reader return ``/etc/passwd``, a file of another folder, or block forever on a named pipe.
:func:`check_ome_files` refuses every name that is not a regular file inside the image's own folder,
before tifffile opens anything.
"""

from __future__ import annotations

import os
import stat
import xml.etree.ElementTree as ElementTree
from pathlib import Path, PurePosixPath, PureWindowsPath

from ..errors import ImageReadError

_SAME_FOLDER = ("A multi-file OME-TIFF must keep all its files together in one folder; copy them together, "
                "or export the image again as a single file")


def normalize_unit(unit: object) -> str:
    """Return the unit as the project spells it (``"µm"`` for every spelling of micron)."""
    text = str(unit or "").strip()
    if text.lower() in {"micron", "microns", "um", "µm", "μm", "\\u00b5m"}:
        return "µm"
    if text.lower() in ("pixel", "pixels", "px", "none"):
        return ""
    return text


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def ome_calibration(xml: str) -> tuple[tuple[float, float] | None, str, list[str]]:
    """Return ``(pixel_size (y, x) or None, unit, channel names)`` from OME-XML.

    Raises
    ------
    xml.etree.ElementTree.ParseError, ValueError
        The XML or a size in it cannot be read.
    """
    root = ElementTree.fromstring(xml)
    pixels = next((e for e in root.iter() if _local(e.tag) == "Pixels"), None)
    if pixels is None:
        return None, "", []
    names = [c.get("Name", "") for c in pixels if _local(c.tag) == "Channel"]
    size_x, size_y = pixels.get("PhysicalSizeX"), pixels.get("PhysicalSizeY")
    if size_x is None:
        return None, "", names
    x = float(size_x)
    y = float(size_y) if size_y is not None else x
    unit = normalize_unit(pixels.get("PhysicalSizeXUnit", "µm"))
    return ((y, x), unit, names) if x > 0 and y > 0 else (None, "", names)


def check_ome_files(path: Path, xml: str | None) -> None:
    """Refuse OME-XML that names, as part of the image, anything but regular files beside ``path``.

    Parameters
    ----------
    path : Path
        The OME-TIFF being opened.
    xml : str or None
        Its OME-XML (``TiffFile.ome_metadata``); None or unreadable XML names no files (tifffile then
        reads the file alone).

    Raises
    ------
    ImageReadError
        A name is absolute, leads out of the folder (``..``, a symbolic link to elsewhere), or is not a
        regular file (a folder, a named pipe, a device).

    Notes
    -----
    Names that do not exist are left to tifffile, which reads their planes as zeros with a warning (a
    dataset copied without all its files). The file's own name and its own UUID are not checked: a
    single-file OME-TIFF that was renamed still names its old name, with its own UUID.
    """
    if not xml:
        return
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return  # tifffile cannot parse it either, and then reads no other file
    own_uuid = root.get("UUID")
    for element in root.iter():
        name = element.get("FileName") if _local(element.tag) == "UUID" else None
        if name is None or element.text == own_uuid or name.lower() == path.name.lower():
            continue
        problem = _outside_problem(path, name)
        if problem:
            raise ImageReadError(f"Cannot read '{path}': its OME metadata name {name!r} as part of the image, "
                                 f"and {problem}. {_SAME_FOLDER}.")


def _outside_problem(path: Path, name: str) -> str:
    """Why ``name`` may not be read as part of ``path``'s image, or ``""`` when it may."""
    if "\x00" in name or not name.strip():
        return "that is not a valid file name"
    posix, windows = PurePosixPath(name), PureWindowsPath(name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in posix.parts + windows.parts:
        return "that file is outside the image's folder"
    candidate = path.parent / name
    if not os.path.lexists(candidate):
        return ""
    folder = path.parent.resolve()
    target = candidate.resolve()
    if folder not in target.parents:
        return "that name leads outside the image's folder (a symbolic link)"
    try:
        mode = os.stat(target).st_mode
    except OSError:
        return ""  # a dangling link inside the folder: tifffile reads its planes as zeros
    if not stat.S_ISREG(mode):
        kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket or special file")
        return f"that is {kind}, not an image file"
    return ""
