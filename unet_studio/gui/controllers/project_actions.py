"""The project workflow of the window: open images and projects, save, export, close safely.

:class:`ProjectActions` talks to the session and the controllers, and to the person through a
``prompts`` object (the main window) with ``ask``, ``choose_folder`` and ``show_error``: the tests
replace those to answer questions without modal dialogs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from ...core.project import folder as proj
from ...core.project import recovery as recovery
from ...core.errors import UNetStudioError

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
        from ...core.io import stack as io

        try:
            self.session.open_image(path)
        except UNetStudioError as exc:
            self.prompts.show_error("Cannot open image", str(exc))
            return
        problem = io.pixel_warning(self.session.image_slice())  # NaN pixels, a constant image: shown, but say so
        if problem:
            self.prompts.show_error("Check this image", f"{Path(path).name}: {problem}.")

    def import_labels(self, path: Path) -> None:
        """Put a label image into the current image (see :meth:`Session.import_labels`), or say why not."""
        try:
            self.session.import_labels(path)
        except UNetStudioError as exc:
            self.prompts.show_error("Cannot import labels", str(exc))

    def import_labels_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self.parent_widget, "Import labels for this image",
                                                        str(Path.home()), IMAGE_FILTER)
        if path:
            self.import_labels(Path(path))

    def open_paths(self, paths: list) -> None:
        for path in map(Path, paths):
            if path.is_dir() and proj.is_project_folder(path):
                self.open_project(path)
            else:
                self.open_image(path)

    def open_project(self, folder: Path, tell_about_crash: bool = True) -> bool:
        if not self.release_project():
            return False
        try:
            problems = self.session.open_project(folder)
        except (UNetStudioError, OSError) as exc:
            self.prompts.show_error("Cannot open project", str(exc))
            return False
        if problems:
            self.prompts.show_error("Some images could not be opened", "\n".join(problems))
        previous = self.session.previous_session
        if previous is not None and (tell_about_crash or previous.running):
            self._tell_about_previous_session(previous)
        return True

    def _tell_about_previous_session(self, previous: recovery.PreviousSession) -> None:
        if previous.running:
            self.prompts.show_error("Project open elsewhere", f"This project is also open in another UNet Studio "
                                    f"(process {previous.pid} on {previous.host}). Both save into the same "
                                    "files: close the project in one of them.")
        else:
            self.prompts.show_error("UNet Studio did not close cleanly", "The project was not closed cleanly last "
                                    f"time. Labels autosaved at {previous.last_saved_text()} were restored; "
                                    "strokes painted after that moment are lost.")

    def offer_recovery(self) -> bool:
        """At start: offer to reopen each untitled project a crashed session left; True when one was opened."""
        for previous in recovery.crashed_untitled_projects(proj.untitled_projects_dir()):
            if not recovery.has_labels(previous.folder):
                shutil.rmtree(previous.folder, ignore_errors=True)  # only an image list: nothing to recover
                continue
            answer = self.prompts.ask("Recover unsaved labels?", _recovery_text(previous),
                                      Button.Open | Button.Discard | Button.Ignore, Button.Open)
            if answer == Button.Open:
                return self.open_project(previous.folder, tell_about_crash=False)
            if answer == Button.Discard:
                shutil.rmtree(previous.folder, ignore_errors=True)
        return False

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
            self.export(*dialog.choice(), tta=dialog.tta())

    def export(self, folder: Path, what: set[str] | None = None, scope: str = "image", tta: bool = False) -> None:
        """Start the export (see :meth:`PredictionController.export`), or say why it cannot start."""
        try:
            self.prediction.export(folder, what, scope, self.overlay_panel.thresholds(), tta=tta)
        except UNetStudioError as exc:
            self.prompts.show_error("Cannot export", str(exc))


def _recovery_text(previous: recovery.PreviousSession) -> str:
    try:
        names = [entry.path.name for entry in proj.load_project(previous.folder).images]
    except UNetStudioError:
        names = []
    images = f" on {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}" if names else ""
    return (f"UNet Studio did not close cleanly last time. The labels of an untitled project{images}, autosaved "
            f"at {previous.last_saved_text()}, can be recovered.\n\nOpen: reopen that project now. "
            "Discard: delete it. Ignore: keep it and ask again at the next start.")
