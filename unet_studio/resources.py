"""Where the bundled resources (sample image, colour tables) are, in a source tree or an installed copy."""

from __future__ import annotations

import sys
from pathlib import Path

SAMPLE_IMAGE = "sample_nuclei.tif"


def resources_dir() -> Path:
    """The ``resources/`` folder: beside the package in a checkout, ``share/unet-studio`` once installed."""
    candidates = [
        Path(__file__).resolve().parent.parent / "resources",
        Path(sys.prefix) / "share" / "unet-studio",
    ]
    for folder in candidates:
        if (folder / SAMPLE_IMAGE).is_file():
            return folder
    return candidates[0]


def resource_path(name: str) -> Path:
    return resources_dir() / name


def sample_image_path() -> Path:
    return resource_path(SAMPLE_IMAGE)
