"""Where the bundled resources (sample image, colour tables, starting models) are, in a source tree or an
installed copy.

Starting models are model folders under ``resources/models/NAME`` (``share/unet-studio/models/NAME`` once
installed): a network trained on public data that a person fine-tunes on their own strokes
(``unet-studio train --init NAME``, "Start from" in the application's Training panel) or predicts with as is
(``unet-studio predict --model NAME``). The environment variable ``UNET_STUDIO_MODELS`` names another folder
of starting models (tests, a site-wide collection).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .core.errors import ModelFileError

SAMPLE_IMAGE = "sample_nuclei.tif"
MODELS_ENV = "UNET_STUDIO_MODELS"


@dataclass(frozen=True)
class StartingModel:
    """A bundled starting model: its name (its folder under ``models/``), what it is for, and its terms."""

    name: str
    label: str
    description: str
    licence: str


#: The bundled starting models, by name.
STARTING_MODELS: dict[str, StartingModel] = {
    "nuclei": StartingModel(
        "nuclei", "nuclei model (bundled)",
        "fluorescence nuclei on a dark background (1 channel; classes background, nucleus): fast preset, "
        "trained on 40 images of the 2018 Data Science Bowl",
        "weights BSD-3-Clause (as UNet Studio); training images CC0 (BBBC038, Caicedo et al., Nature Methods 2019)"),
}


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


def models_dir() -> Path:
    """The folder of the starting models: ``$UNET_STUDIO_MODELS`` when set, else ``resources/models``."""
    override = os.environ.get(MODELS_ENV)
    return Path(override) if override else resources_dir() / "models"


def starting_model_path(name: str) -> Path:
    """The model folder of the starting model ``name``.

    Raises
    ------
    ModelFileError
        ``name`` is not a starting model (the message lists them), or its folder is missing from this
        installation.
    """
    if name not in STARTING_MODELS:
        raise ModelFileError(f"there is no starting model called {name!r}: the starting models are "
                             f"{', '.join(STARTING_MODELS)}; or give the path of a model folder")
    folder = models_dir() / name
    if not (folder / "model.json").is_file():
        raise ModelFileError(f"the {STARTING_MODELS[name].label} is missing from this installation (expected in "
                             f"{folder}): reinstall UNet Studio, or train a model with 'unet-studio train'")
    return folder


def model_folder(value: str | os.PathLike) -> Path:
    """A model given on the command line: a starting model's name (``nuclei``) or the path of a model folder.

    A name wins over a folder of that name in the current folder: write ``./nuclei`` for the folder.
    """
    text = os.fspath(value)
    if text in STARTING_MODELS:
        return starting_model_path(text)
    path = Path(text)
    if not path.exists() and os.sep not in text and "/" not in text:  # a mistyped name, most likely
        raise ModelFileError(f"there is no starting model or model folder called {text!r}: the starting models "
                             f"are {', '.join(STARTING_MODELS)}; or give the path of a model folder")
    return path


def describe_starting_models() -> list[str]:
    """One line per starting model: name, what it is for, and its licence."""
    return [f"{m.name}: {m.description} ({m.licence})" for m in STARTING_MODELS.values()]
