"""The project folder: its layout, reading and writing ``project.json`` and labels, crash detection and recovery,
the person's folders (recent projects, untitled projects)."""

from .folder import (ClassInfo, ImageEntry, Project, create_project, default_classes, fingerprint,
                     is_project_folder, load_accepted, load_labels, load_project, next_color, project_text,
                     save_accepted, save_labels, save_project, write_project)
from .objects import load_instances, save_instances
from .layout import ProjectError, ProjectLayout, is_valid_name
from .models import has_previous_model, keep_previous_model, restore_previous_model
from .schema import MAX_CLASSES, PIXEL_UNITS, clean_pixel_size
from .recovery import (PreviousSession, claim, crashed_untitled_projects, has_labels, previous_session, release,
                       remove_temporary_files)
from .user_dirs import add_recent, is_untitled, load_recent, untitled_projects_dir, user_config_dir

__all__ = [
    "ClassInfo", "ImageEntry", "MAX_CLASSES", "PIXEL_UNITS", "clean_pixel_size", "PreviousSession", "Project", "ProjectError", "ProjectLayout", "add_recent", "claim",
    "crashed_untitled_projects", "create_project", "default_classes", "fingerprint", "has_labels", "has_previous_model", "keep_previous_model", "restore_previous_model",
    "is_project_folder", "is_untitled", "is_valid_name", "load_accepted", "load_instances", "load_labels", "load_project", "load_recent",
    "next_color", "previous_session", "project_text", "release", "remove_temporary_files", "save_accepted", "save_instances", "save_labels",
    "save_project", "untitled_projects_dir", "user_config_dir", "write_project",
]
