"""The project folder: its layout, reading and writing ``project.json`` and labels, crash detection and recovery."""

from .folder import (ClassInfo, ImageEntry, Project, ProjectError, create_project, is_project_folder,
                     load_project, save_labels, save_project)
from .recovery import PreviousSession, claim, previous_session, release

__all__ = [
    "ClassInfo", "ImageEntry", "PreviousSession", "Project", "ProjectError", "claim", "create_project",
    "is_project_folder", "load_project", "previous_session", "release", "save_labels", "save_project",
]
