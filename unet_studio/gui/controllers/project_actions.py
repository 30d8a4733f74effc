"""The project workflow of the window: open images and projects, save, export, close safely.

:class:`ProjectActions` talks to the session and the controllers, and to the person through a
``prompts`` object (the main window) with ``ask``, ``choose``, ``choose_folder``, ``choose_files``,
``show_error`` and ``show_status``: the tests replace those to answer questions without modal dialogs.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from ...core import project as proj
from ...core.errors import UNetStudioError
from ..label_import import import_label_file
from ..panels.import_labels_dialog import ask_label_mapping

log = logging.getLogger(__name__)

Button = QtWidgets.QMessageBox.StandardButton
IMAGE_FILTER = "Images (*.tif *.tiff *.png *.jpg *.jpeg *.bmp);;All files (*)"
NEW_PROJECT = "Open in a new project"
ADD_TO_PROJECT = "Add to this project"


class ProjectActions(QtCore.QObject):
    """File and project actions; ``parent_widget`` parents the file dialogs."""

    def __init__(self, session, training, prediction, view_state, prompts,
                 parent_widget: QtWidgets.QWidget) -> None:
        super().__init__(parent_widget)
        self.session, self.training, self.prediction = session, training, prediction
        self.view_state, self.prompts, self.parent_widget = view_state, prompts, parent_widget
        # Asks how a label image's values become classes (tests put a function of their own here).
        self.label_mapping_chooser = lambda request: ask_label_mapping(request, parent_widget)

    def open_image(self, path: Path) -> None:
        from ...core import io

        try:
            self.session.open_image(path)
        except UNetStudioError as exc:
            self.prompts.show_error("Cannot open image", str(exc))
            return
        # What the reader left out (a TIFF's other pages), NaN pixels, a constant image: shown, but say so.
        problems = list(self.session.current.stack.warnings) if self.session.current else []
        raw = self.session.slices.raw()
        problem = io.pixel_warning(getattr(raw, "overview", raw))  # a big image: its overview
        problems += [f"{Path(path).name}: {problem}."] if problem else []
        if problems:
            self.prompts.show_error("Check this image", "\n".join(problems))

    def import_labels(self, path: Path) -> None:
        """Put a label image into the current image (see :func:`.label_import.import_label_file`), or say why not."""
        try:
            done = import_label_file(self.session, path, self.label_mapping_chooser)
        except UNetStudioError as exc:
            self.prompts.show_error("Cannot import labels", str(exc))
            return
        self.parent_widget.statusBar().showMessage(done or "Import cancelled: nothing changed", 10000)

    def import_labels_dialog(self) -> None:
        path, _ = QtWidgets.QFileDialog.getOpenFileName(self.parent_widget, "Import labels for this image",
                                                        str(Path.home()), IMAGE_FILTER)
        if path:
            self.import_labels(Path(path))

    def open_paths(self, paths: list) -> None:
        """Open what the person dropped or chose: project folders, and images (see :meth:`open_images`)."""
        images = []
        for path in map(Path, paths):
            if path.is_dir() and proj.is_project_folder(path):
                self.open_project(path)
            else:
                images.append(path)
        self.open_images(images)

    def open_image_dialog(self) -> None:
        """File > Open Image: choose image files and open them (see :meth:`open_images`)."""
        self.open_images(self.prompts.choose_files("Open image"))

    def open_images(self, paths: list) -> None:
        """Open images the person chose: into this project, or into a new one when they are of another kind.

        An image of the kind of the project's images (:mod:`..image_kind`) is added to the project, as
        ilastik adds images to a project's input data and napari adds layers to its viewer: training on
        several images of one kind is the usual way. An image of another kind (channels, integer or float
        pixels, size, pixel size) is offered a new project (the default), since one project trains one
        model with one set of classes. An untouched untitled project (the sample shown at start, nothing
        painted or trained) is replaced without asking.
        """
        paths = [Path(path) for path in paths]
        if not paths:
            return
        where = self._where_to_open(paths[0])
        if where is None:
            return
        if where == "new":
            if not self.release_project():
                return
            self.session.new_untitled_project()
        for path in paths:
            self.open_image(path)
        if where == "new" and self.session.images:
            self.prompts.show_status(f"Opened {paths[0].name} in a new untitled project (File > Save Project to "
                                     "choose its folder)")

    def _where_to_open(self, path: Path) -> str | None:
        """"add", "new" or None (the person cancelled) for opening ``path`` now."""
        from ...core import io
        from ...resources import sample_image_path
        from ..image_kind import ImageKind, kind_differences

        session = self.session
        if not session.images or any(state.entry.path == path.resolve() for state in session.images):
            return "add"
        untouched = session.is_untitled and not session.has_labels() and session.model_dir is None
        if untouched and all(state.entry.path == sample_image_path().resolve() for state in session.images):
            return "new"  # the sample shown at start, untouched: the person's own image replaces it
        try:
            with io.read_image(path) as stack:
                new = ImageKind.of_stack(stack)
        except (UNetStudioError, OSError):
            return "add"  # open_image says what is wrong with the file
        kinds = [ImageKind.of_stack(state.stack) for state in session.images]
        differences = [kind_differences(new, kind) for kind in kinds]
        if any(not found for found in differences):
            self.prompts.show_status(f"{path.name} added to this project (same kind as its images: "
                                     f"{new.describe()})")
            return "add"
        project = "this untitled project" if session.is_untitled else f"the project '{session.folder.name}'"
        choice = self.prompts.choose(
            "Open image", f"{path.name} is of another kind than the images of {project}: "
            f"{'; '.join(differences[0])}.\n\nA project trains one model with one set of classes: an image of "
            "another kind usually belongs in a project of its own.", [NEW_PROJECT, ADD_TO_PROJECT], NEW_PROJECT)
        return {NEW_PROJECT: "new", ADD_TO_PROJECT: "add"}.get(choice)

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
        notices = self.session.project.notices
        if notices:
            shown = notices[:12] + ([f"... and {len(notices) - 12} more"] if len(notices) > 12 else [])
            self.prompts.show_error("Some project settings were ignored", "These values of project.json are not "
                                    "valid and were replaced by defaults (fixed at the next save):\n"
                                    + "\n".join(shown))
        previous = self.session.previous_session
        if previous is not None and (tell_about_crash or previous.running):
            self._tell_about_previous_session(previous)
        return True

    def _tell_about_previous_session(self, previous: proj.PreviousSession) -> None:
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
        for previous in proj.crashed_untitled_projects(proj.untitled_projects_dir()):
            if not proj.has_labels(previous.folder):
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
        """Stop background work and save (or ask about) the open project; False when the project stays open.

        Never raises (it runs inside the window's closeEvent): an unexpected failure is shown and the
        project stays open, with nothing lost.
        """
        try:
            return self._release_project()
        except Exception as exc:  # noqa: BLE001 - nothing may escape closeEvent
            log.exception("closing the project failed")
            self.prompts.show_error("Cannot close the project", f"{exc}\n\nThe project stays open; nothing was lost.")
            return False

    def _release_project(self) -> bool:
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
                return self.save_as_dialog()
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
        """File > Add Images: add the chosen images to this project (the person said so: no question of kind)."""
        for path in self.prompts.choose_files("Add images to this project"):
            self.open_image(Path(path))

    def save(self) -> bool:
        """File > Save: write the project in its folder; the first Save of an untitled project asks where.

        (Autosave keeps an untitled project's work in a recovery folder; that is no place the person chose.)
        """
        if self.session.is_untitled:
            return self.save_as_dialog()
        return self.session.save_now()

    def save_as_dialog(self) -> bool:
        """Ask for a folder and save the project there; a refused folder is explained and the question asked
        again. Returns False when the person cancels or writing failed (the project is unchanged)."""
        title = "Save the project in a folder"
        refused: set[Path] = set()
        while True:
            folder = self.prompts.choose_folder(title)
            if folder is None or folder in refused:
                # The same refused folder again means stop asking: under Xvfb the folder dialog was seen
                # returning its start folder at once, again and again, opening one message box each time.
                return False
            try:
                return self.session.save_project_as(folder)  # a failed write is reported by the session
            except UNetStudioError as exc:
                refused.add(folder)
                self.prompts.show_error("Cannot save the project there", str(exc))
                title = "Save the project in another folder"

    def export_dialog(self) -> None:
        from ..panels.export_dialog import ExportDialog

        base = self.session.folder or Path.home()
        dialog = ExportDialog(base / "export", self.session.model_dir is not None, self.parent_widget)
        if dialog.exec():
            self.export(*dialog.choice(), tta=dialog.tta())

    def export(self, folder: Path, what: set[str] | None = None, scope: str = "image", tta: bool = False) -> None:
        """Start the export (see :meth:`PredictionController.export`), or say why it cannot start."""
        try:
            self.prediction.export(folder, what, scope, list(self.view_state.thresholds), tta=tta)
        except UNetStudioError as exc:
            self.prompts.show_error("Cannot export", str(exc))


def _recovery_text(previous: proj.PreviousSession) -> str:
    try:
        names = [entry.path.name for entry in proj.load_project(previous.folder).images]
    except UNetStudioError:
        names = []
    images = f" on {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}" if names else ""
    return (f"UNet Studio did not close cleanly last time. The labels of an untitled project{images}, autosaved "
            f"at {previous.last_saved_text()}, can be recovered.\n\nOpen: reopen that project now. "
            "Discard: delete it. Ignore: keep it and ask again at the next start.")
