"""The project's model and the one before it: a from-scratch training run never loses the previous model.

Training writes the project's model folder (``models/current/``). A run that starts from scratch replaces it
with whatever it saves, even after one step when stopped at once; so before such a run the current model is
copied to ``models/previous/`` (:func:`keep_previous_model`), and :func:`restore_previous_model` swaps the two.
Copies go through a temporary sibling folder that is renamed into place, so a crash leaves either the old
copy or the new one.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

from .layout import ProjectError, ProjectLayout

log = logging.getLogger(__name__)

__all__ = ["has_previous_model", "keep_previous_model", "restore_previous_model"]


def _has_model(folder: Path) -> bool:
    return (folder / "model.json").is_file()


def has_previous_model(layout: ProjectLayout) -> bool:
    """Whether ``models/previous/`` holds a model."""
    return _has_model(layout.previous_model_dir)


def keep_previous_model(layout: ProjectLayout) -> bool:
    """Copy ``models/current/`` to ``models/previous/`` (replacing an older copy); whether there was a model.

    Raises :class:`ProjectError` when the copy cannot be written (the current model is left as it is).
    """
    current, previous = layout.model_dir, layout.previous_model_dir
    if not _has_model(current):
        return False
    layout.inside(previous)
    try:
        staging = Path(tempfile.mkdtemp(prefix=".previous.", dir=previous.parent))
        shutil.copytree(current, staging / "model")
        if previous.exists():
            shutil.rmtree(previous)
        os.replace(staging / "model", previous)
        shutil.rmtree(staging, ignore_errors=True)
    except OSError as exc:
        raise ProjectError(f"cannot keep a copy of the model in {previous} ({exc.strerror or exc}); free some "
                           "space or check the folder's permissions, then train again") from None
    log.info("kept the previous model in %s", previous)
    return True


def restore_previous_model(layout: ProjectLayout) -> None:
    """Swap ``models/previous/`` and ``models/current/`` (so restoring twice undoes the restore).

    Raises :class:`ProjectError` when there is no previous model or the folders cannot be renamed.
    """
    current, previous = layout.model_dir, layout.previous_model_dir
    if not _has_model(previous):
        raise ProjectError(f"there is no previous model in {previous}: it is kept when a training run starts "
                           "from scratch over an existing model")
    aside = current.parent / ".current.swap"
    try:
        if aside.exists():
            shutil.rmtree(aside)
        if current.exists():
            os.replace(current, aside)
        os.replace(previous, current)
        if aside.exists():
            os.replace(aside, previous)
    except OSError as exc:
        raise ProjectError(f"cannot restore the previous model in {layout.folder} ({exc.strerror or exc}): "
                           "check the folder's permissions") from None
