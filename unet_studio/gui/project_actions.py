"""The project workflow of the window: open images and projects, save, export, close safely.

:class:`ProjectActions` talks to the session and the controllers, and to the person through a
``prompts`` object (the main window) with ``ask``, ``choose_folder`` and ``show_error``: the tests
replace those to answer questions without modal dialogs.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

from ..core import project as proj
from ..core.errors import UNetStudioError

Button = QtWidgets.QMessageBox.StandardButton
IMAGE_FILTER = "Images (*.tif *.tiff *.png *.jpg *.jpeg *.bmp);;All files (*)"


class ProjectActions(QtCore.QObject):
    """File and project actions; ``parent_widget`` parents the file dialogs."""

    def __init__(self, session, training, prediction, overlay_panel, prompts,
                 parent_widget: QtWidgets.QWidget) -> None:
        super().__init__(parent_widget)
        self.session, self.training, self.prediction = session, training, prediction
        self.overlay_panel, self.prompts, self.parent_widget = overlay_panel, prompts, parent_widget

    def open_image(self, path: Path) -> None:
        try:
            self.session.open_image(path)
        except UNetStudioError as exc:
            self.prompts.show_error("Cannot open image", str(exc))

    def open_paths(self, paths: list) -> None:
        for path in map(Path, paths):
            if path.is_dir() and proj.is_project_folder(path):
                self.open_project(path)
            else:
                self.open_image(path)

    def open_project(self, folder: Path) -> bool:
        if not self.release_project():
            return False
        try:
            problems = self.session.open_project(folder)
        except (UNetStudioError, OSError) as exc:
            self.prompts.show_error("Cannot open project", str(exc))
            return False
        if problems:
            self.prompts.show_error("Some images could not be opened", "\n".join(problems))
        return True

    def release_project(self) -> bool:
        """Stop background work and save (or ask about) the open project; False when the person cancels."""
        if self.training.is_running():
            answer = self.prompts.ask("Training is running", "Stop training? The best model so far is kept.",
                              Button.Yes | Button.Cancel, Button.Cancel)
            if answer != Button.Yes:
                return False
        self.training.shutdown()
        self.prediction.shutdown()
        session = self.session
        if session.is_untitled and session.has_labels() and not session.discarded:
            answer = self.prompts.ask("Save the project?", "The labels of this untitled project are not saved in a "
                              "project folder. Save them?", Button.Save | Button.Discard | Button.Cancel,
                              Button.Save)
            if answer == Button.Cancel:
                return False
            if answer == Button.Save:
                folder = self.prompts.choose_folder("Save the project in a folder")
                if folder is None:
                    return False
                session.save_project_as(folder)
            else:
                session.discard_untitled()
            return True
        if not session.is_untitled and session.folder is not None and not session.save_now():
            answer = self.prompts.ask("Labels not saved", f"{session.last_save_error}\n\nClose anyway and lose the "
                              "unsaved labels?", Button.Discard | Button.Cancel, Button.Cancel)
            return answer == Button.Discard
        return True

    def new_project_dialog(self) -> None:
        folder = self.prompts.choose_folder("New project: choose an empty folder")
        if folder is not None:
            self.open_project(folder)

    def open_project_dialog(self) -> None:
        folder = self.prompts.choose_folder("Open a project folder")
        if folder is not None:
            self.open_project(folder)

    def fill_recent(self, menu: QtWidgets.QMenu) -> None:
        menu.clear()
        for folder in proj.load_recent():
            menu.addAction(str(folder)).triggered.connect(lambda _=False, f=folder: self.open_project(f))
        if menu.isEmpty():
            menu.addAction("(none)").setEnabled(False)

    def add_images_dialog(self) -> None:
        paths, _ = QtWidgets.QFileDialog.getOpenFileNames(self.parent_widget, "Add images", str(Path.home()), IMAGE_FILTER)
        self.open_paths(paths)

    def save_as_dialog(self) -> None:
        folder = self.prompts.choose_folder("Save the project in a folder")
        if folder is not None:
            self.session.save_project_as(folder)

    def export_dialog(self) -> None:
        from .panels.export_dialog import ExportDialog

        base = self.session.folder or Path.home()
        dialog = ExportDialog(base / "export", self.session.model_dir is not None, self.parent_widget)
        if dialog.exec():
            folder, what, scope = dialog.choice()
            self.prediction.export(folder, what, scope, self.overlay_panel.thresholds())
