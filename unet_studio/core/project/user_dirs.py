"""The person's folders: the configuration folder, the untitled projects folder and the recent projects list."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from ..errors import UNetStudioError
from ..io import write_text
from .layout import PROJECT_FILE

log = logging.getLogger(__name__)

RECENT_FILE = "recent_projects.json"
RECENT_LIMIT = 10


def user_config_dir() -> Path:
    """$UNET_STUDIO_CONFIG_DIR, else $XDG_CONFIG_HOME/unet-studio, else ~/.config/unet-studio."""
    env = os.environ.get("UNET_STUDIO_CONFIG_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CONFIG_HOME") or (Path.home() / ".config")
    return Path(base) / "unet-studio"


def untitled_projects_dir() -> Path:
    """Where projects not yet saved by the person live (autosaved, so that nothing is lost)."""
    env = os.environ.get("UNET_STUDIO_CONFIG_DIR")
    if env:
        return Path(env) / "untitled"
    base = os.environ.get("XDG_DATA_HOME") or (Path.home() / ".local" / "share")
    return Path(base) / "unet-studio" / "untitled"


def is_untitled(folder: Path | None) -> bool:
    """Whether ``folder`` is an untitled project's scratch folder (or there is no folder at all)."""
    if folder is None:
        return True
    return Path(folder).resolve().parent == untitled_projects_dir().resolve()


def load_recent(config_dir: str | os.PathLike | None = None) -> list[Path]:
    """Recent project folders, newest first (those that no longer exist are dropped)."""
    path = Path(config_dir or user_config_dir()) / RECENT_FILE
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
        folders = [Path(item) for item in items if isinstance(item, str) and "\0" not in item]
    except (OSError, ValueError, TypeError, RecursionError):
        return []
    return [folder for folder in folders if (folder / PROJECT_FILE).is_file()]


def add_recent(folder: str | os.PathLike, config_dir: str | os.PathLike | None = None) -> list[Path]:
    """Put ``folder`` first in the recent list; a failure to write it is logged, never raised."""
    config_dir = Path(config_dir or user_config_dir())
    folder = Path(folder).resolve()
    folders = [folder] + [f for f in load_recent(config_dir) if f != folder]
    folders = folders[:RECENT_LIMIT]
    try:
        config_dir.mkdir(parents=True, exist_ok=True)
        write_text(config_dir / RECENT_FILE, json.dumps([str(f) for f in folders], indent=2))
    except (OSError, UNetStudioError) as exc:
        log.warning("cannot update the recent projects list: %s", exc)
    return folders
