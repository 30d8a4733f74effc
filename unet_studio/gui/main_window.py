"""The main window: layout and wiring only (state in Session, behaviour in the controllers and panels)."""

from __future__ import annotations

import logging
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from ..core.errors import UNetStudioError
from .canvas import ImageCanvas
from .controllers.prediction import PredictionController
from .controllers.project_actions import ProjectActions
from .controllers.training import TrainingController
from .controllers.training_request import TrainingRequest
from .controllers.warmup import WarmUp
from .gui_gc import collect_on_gui_thread, window_closed
from .panels.classes_panel import ClassesPanel
from .panels.display_panel import DisplayPanel
from .panels.docks import add_docks
from .panels.getting_started import FirstRunHint, GettingStartedDialog
from .panels.images_panel import ImagesPanel
from .panels.overlay_panel import OverlayPanel
from .panels.tool_bar import PaintToolBar
from .panels.training_panel import TrainingPanel
from .prompts import ask_choice, ask_image_files
from .session import Session
from .tools import PaintTools
from .view_binder import ViewBinder
from .view_state import DEFAULT_CONTRAST, ViewState

log = logging.getLogger(__name__)
Button = QtWidgets.QMessageBox.StandardButton
SHORTCUTS = ("Ctrl+O open image · Ctrl+Shift+O open project · Ctrl+I add images · Ctrl+S save · "
             "Ctrl+Shift+S save as · Ctrl+E export\n"
             "Left drag: paint with the tool · middle drag, or Space/Ctrl + left drag: pan · wheel: zoom\n"
             "B brush · E eraser · F fill · L pick class · [ ], Ctrl+wheel, Shift+drag: brush size · 1-9 class\n"
             "Ctrl+Z undo · Ctrl+Shift+Z redo · Ctrl+P predict slice · Ctrl+Shift+P predict images... · "
             "Ctrl+Return accept prediction")


class MainWindow(QtWidgets.QMainWindow):
    """The application window: builds the panels, the canvas and the controllers, and connects them."""

    def __init__(self, session: Session | None = None) -> None:
        super().__init__()
        self.setWindowTitle("UNet Studio")
        self.resize(1400, 880)
        self.setAcceptDrops(True)
        self.session = session or Session(self)
        self.last_error: tuple[str, str] | None = None
        self._boxes: list[QtWidgets.QMessageBox] = []

        self.view_state = ViewState()
        self.canvas = ImageCanvas()
        self.tools = PaintTools(self.session, self.canvas, self.view_state, self)
        self.tool_bar = PaintToolBar(self.tools, self)
        self.images_panel = ImagesPanel(self.session)
        self.classes_panel = ClassesPanel(self.session)
        self.display_panel = DisplayPanel(self.view_state)
        self.overlay_panel = OverlayPanel(self.view_state)
        self.training_panel = TrainingPanel()
        self.binder = ViewBinder(self.session, self.view_state, self.canvas, self.display_panel,
                                 self.overlay_panel, self)
        self.training = TrainingController(self.session, self)
        self.prediction = PredictionController(self.session, self)
        self.actions = ProjectActions(self.session, self.training, self.prediction, self.view_state, self, self)
        self.warm_up = WarmUp(self)
        collect_on_gui_thread(self)  # never in a worker: a cycle holding a Qt object must die on this thread
        self.cursor_label = QtWidgets.QLabel()
        self.objects_label = QtWidgets.QLabel()  # "N objects" while the prediction shows objects
        self.getting_started: GettingStartedDialog | None = None
        self._layout()
        self.first_run_hint = FirstRunHint(self.canvas, self.session)
        self._menus()
        self._wire()
        self._update_title()

    # ------------------------------------------------------------------ layout

    def _layout(self) -> None:
        self.setCentralWidget(self.canvas)
        self.addToolBar(self.tool_bar)
        add_docks(self, [("Images", self.images_panel), ("Classes", self.classes_panel),
                         ("Display", self.display_panel), (None, self.overlay_panel)],
                  [("Training", self.training_panel)])
        self.statusBar().addPermanentWidget(self.cursor_label)
        self.statusBar().addPermanentWidget(self.objects_label)

    def _action(self, menu: QtWidgets.QMenu, text: str, slot, shortcut=None) -> QtGui.QAction:
        action = menu.addAction(text)
        action.triggered.connect(lambda _=False: self._guarded(slot))
        if shortcut is not None:
            action.setShortcut(QtGui.QKeySequence(shortcut))
        return action

    def _menus(self) -> None:
        keys = QtGui.QKeySequence.StandardKey
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "&New Project...", self.actions.new_project_dialog)
        self._action(file_menu, "&Open Image...", self.actions.open_image_dialog, keys.Open)
        self._action(file_menu, "Open &Project...", self.actions.open_project_dialog, "Ctrl+Shift+O")
        self.recent_menu = file_menu.addMenu("Open &Recent")
        self.recent_menu.aboutToShow.connect(lambda: self.actions.fill_recent(self.recent_menu))
        self._action(file_menu, "&Add Images...", self.actions.add_images_dialog, "Ctrl+I")
        self._action(file_menu, "&Import Labels...", self.actions.import_labels_dialog)
        self._action(file_menu, "&Save Project", self.actions.save, keys.Save)
        self._action(file_menu, "Save Project &As...", self.actions.save_as_dialog, keys.SaveAs)
        self._action(file_menu, "&Export...", self.actions.export_dialog, "Ctrl+E")
        self._action(file_menu, "Restore &Previous Model", self.restore_previous_model)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, keys.Quit)
        edit = self.menuBar().addMenu("&Edit")
        self.undo_action = self._action(edit, "&Undo", self.session.editing.undo, keys.Undo)
        self.redo_action = self._action(edit, "&Redo", self.session.editing.redo, "Ctrl+Shift+Z")
        self.redo_action.setShortcuts([QtGui.QKeySequence("Ctrl+Shift+Z"), QtGui.QKeySequence("Ctrl+Y")])
        select = edit.addMenu("Select &class")
        for index in range(9):
            self._action(select, f"Class {index + 1}", lambda i=index: self.session.set_active_class(i),
                         str(index + 1))
        view = self.menuBar().addMenu("&View")
        self._action(view, "&Next slice", lambda: self.session.set_current_slice(self.session.current_slice + 1),
                     "Right").setShortcuts([QtGui.QKeySequence("Right"), QtGui.QKeySequence("PgDown")])
        self._action(view, "&Previous slice", lambda: self.session.set_current_slice(self.session.current_slice - 1),
                     "Left").setShortcuts([QtGui.QKeySequence("Left"), QtGui.QKeySequence("PgUp")])
        self._action(view, "&Reset zoom", self.canvas.reset_view, "Home")
        view.addAction(self.display_panel.scale_bar_action)
        self._action(self.menuBar().addMenu("&Image"), "Set &Pixel Size...", lambda: self.binder.ask_pixel_size(self))
        predict = self.menuBar().addMenu("&Predict")
        self._action(predict, "Predict current &slice", lambda: self.prediction.predict("slice"), "Ctrl+P")
        self._action(predict, "Predict current &image (all its slices)", lambda: self.prediction.predict("image"))
        self._action(predict, "Predict i&mages...", self.predict_chosen, "Ctrl+Shift+P")
        self._action(predict, "&Cancel prediction", self.prediction.cancel)
        self._action(predict, "Big Images on &Dask...", self.choose_dask_address)
        self._action(predict, "Accept prediction of this slice", self.accept_prediction, "Ctrl+Return")
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Getting started", self.show_getting_started)
        self._action(help_menu, "&Shortcuts", self.show_shortcuts, keys.HelpContents)

    def _wire(self) -> None:
        session = self.session
        session.error.connect(self.show_error)
        session.project_changed.connect(lambda: self._update_title(fresh=True))
        session.project_changed.connect(self._restore_settings)
        session.about_to_save.connect(self._store_settings)
        session.dirty_changed.connect(lambda _: self._update_title())
        session.labels_changed.connect(lambda *_: self._update_title())
        session.model_changed.connect(self._update_title)
        # An untitled project's autosave is a recovery copy, not a save: nothing to announce.
        session.saved.connect(lambda where: None if session.is_untitled else self.show_status(f"Saved to {where}"))
        session.model_changed.connect(
            lambda: self.training_panel.set_continue_available(session.model_dir is not None))
        self.binder.cursor_text.connect(self.cursor_label.setText)
        self.binder.objects_counted.connect(
            lambda n: self.objects_label.setText("" if n < 0 else f"{n} object{'s' if n != 1 else ''}"))
        self.tools.picked_at.connect(self.show_object_at)
        self.binder.objects.failed.connect(lambda message: self.show_status(f"Cannot make objects: {message}", 10000))
        self.canvas.files_dropped.connect(self.actions.open_paths)
        self.images_panel.add_requested.connect(lambda: self._guarded(self.actions.add_images_dialog))
        self.images_panel.remove_requested.connect(lambda i: self._guarded(lambda: session.remove_image(i)))
        self.classes_panel.delete_requested.connect(self._confirm_delete_class)
        self.tools.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        self.tools.confirm = lambda title, text: self.ask(title, text, Button.Yes | Button.Cancel,
                                                          Button.Cancel) == Button.Yes
        self.training_panel.start_requested.connect(lambda request: self._guarded(lambda: self.training.start(request)))
        self.training_panel.stop_requested.connect(self.training.stop)
        self.training.started.connect(lambda: (self.training_panel.start_run(), self.training_panel.set_running(True)))
        self.training.ended.connect(self.training_panel.show_outcome)
        self.training.ended.connect(lambda _: self.show_status(
            "The model this run replaced is kept: File > Restore Previous Model puts it back", 10000)
            if self.training.kept_previous else None)
        self.training.progressed.connect(self.training_panel.show_progress)
        self.training.failed.connect(self._on_training_failed)
        self.training.finished.connect(lambda _: self.training_panel.set_running(False))
        self.training.finished.connect(self._adopt_calibrated_thresholds)
        self.training.finished.connect(lambda ok: self.training_panel.adopt_trained_model() if ok else None)
        self.overlay_panel.accept_requested.connect(lambda: self._guarded(self.accept_prediction))
        self.overlay_panel.predict_all_requested.connect(self.predict_chosen)
        self.overlay_panel.cancel_requested.connect(self.prediction.cancel)
        self.prediction.busy_changed.connect(self.overlay_panel.set_busy)
        self.prediction.progressed.connect(self.overlay_panel.set_progress)
        self.prediction.big_predicted.connect(  # a big image's labels, predicted blockwise: shown tile by tile
            lambda index, path: self.canvas.show_big_prediction(path) if index == session.current_index else None)
        session.current_changed.connect(  # and again when the image is shown again (after the view binder's turn)
            lambda index, _: self.canvas.show_big_prediction(self.prediction.big_prediction_of(index)))
        self.prediction.failed.connect(
            lambda message, details: self.show_error(f"{self.prediction.activity} failed", message, details))
        self.prediction.finished.connect(lambda text: self.statusBar().showMessage(text.capitalize(), 5000))
        self.training_panel.set_continue_available(session.model_dir is not None)

    def _store_settings(self) -> None:
        self.session.project.settings.update({"training": self.training_panel.settings().to_settings(),
                                              "brush_size": self.tools.brush_size, **self.view_state.to_settings(),
                                              "big_images": {"dask_scheduler": self.prediction.dask_address}})

    def _restore_settings(self) -> None:
        settings = self.session.project.settings
        self.prediction.dask_address = settings.get("big_images", {}).get("dask_scheduler", "")
        self.training_panel.set_settings(TrainingRequest.from_settings(settings.get("training", {})))
        self.view_state.apply_settings({"contrast_percentiles": DEFAULT_CONTRAST, **settings})
        if "brush_size" in settings:
            self.tools.set_brush_size(int(settings["brush_size"]))

    def choose_dask_address(self, get_text=None) -> None:
        """Predict > Big Images on Dask...: where "Predict all" runs on big images (kept in the project)."""
        from .big_image.dask_choice import ask_dask_address, describe_dask_address

        try:
            address = ask_dask_address(self, self.prediction.dask_address, *([get_text] if get_text else []))
        except ValueError as exc:
            self.show_error("Not a scheduler address", str(exc))
            return
        if address is not None and address != self.prediction.dask_address:
            self.prediction.dask_address = address
            self.show_status(f"Big images will be predicted {describe_dask_address(address)}", 8000)

    def _update_title(self, fresh: bool = False) -> None:
        session = self.session
        name = "untitled project" if session.is_untitled else (session.folder.name if session.folder else "")
        if session.is_untitled:
            # An untitled project holding only images (the sample opened at start-up) has nothing to lose:
            # the "*" says that there is work to save, labels or a model. Autosave into the recovery folder
            # is no save: the "*" stays until the person saves the project in a folder (or opens another).
            # (Once shown, the "*" stays: no scan of the labels on every stroke.)
            unsaved = ((self.windowTitle().endswith("*") and not fresh) or session.model_dir is not None
                       or session.has_labels())
        else:
            unsaved = session.is_dirty
        title = f"UNet Studio - {name}{' *' if unsaved else ''}"
        if title != self.windowTitle():
            self.setWindowTitle(title)

    # ------------------------------------------------------------------ messages (tests replace these)

    def show_error(self, title: str, message: str, details: str = "") -> None:
        """Tell the person what went wrong, without blocking: status bar + a non-modal message box."""
        self.last_error = (title, message)
        log.warning("%s: %s", title, message)
        self.statusBar().showMessage(f"{title}: {message.splitlines()[0] if message else ''}", 10000)
        box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, title, message,
                                    QtWidgets.QMessageBox.StandardButton.Ok, self)
        if details:
            box.setDetailedText(details)
        box.setModal(False)
        box.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        box.finished.connect(lambda _=0, b=box: self._boxes.remove(b) if b in self._boxes else None)
        self._boxes.append(box)
        box.show()

    def ask(self, title: str, text: str, buttons, default) -> Button:
        return QtWidgets.QMessageBox.question(self, title, text, buttons, default)

    def choose(self, title: str, text: str, options: list[str], default: str) -> str | None:
        """One of ``options`` (a button each), or None when cancelled."""
        return ask_choice(self, title, text, options, default)

    def choose_folder(self, title: str) -> Path | None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, title, str(Path.home()))
        return Path(folder) if folder else None

    def choose_files(self, title: str) -> list[Path]:
        return ask_image_files(self, title, Path.home())

    def show_status(self, text: str, ms: int = 6000) -> None:
        self.statusBar().showMessage(text, ms)

    def _guarded(self, action) -> None:
        try:
            action()
        except UNetStudioError as exc:
            self.show_error("Cannot do that", str(exc))
        except OSError as exc:
            self.show_error("File problem", str(exc))

    # ------------------------------------------------------------------ files and projects

    def open_image(self, path: Path) -> None:
        self.actions.open_image(path)

    def open_project(self, folder: Path) -> bool:
        return self.actions.open_project(folder)

    def accept_prediction(self) -> None:
        session = self.session
        if session.editing.accept_prediction(self.view_state.thresholds) is None and session.slices.probabilities() is None:
            raise UNetStudioError("there is no prediction for this slice yet: train or predict first")

    def _confirm_delete_class(self, index: int) -> None:
        if not 0 <= index < len(self.session.classes):
            return
        name = self.session.classes[index].name
        if self.ask("Delete class", f"Delete the class '{name}'? Its painted pixels become unlabelled.",
                    Button.Yes | Button.Cancel, Button.Cancel) == Button.Yes:
            self._guarded(lambda: self.classes_panel.delete_class(index))

    def predict_chosen(self) -> None:
        """The "Predict all" button and Predict > Predict images...: this slice, this stack or all images."""
        self._guarded(lambda: self.prediction.predict_chosen(self.choose))

    def show_shortcuts(self) -> None:
        QtWidgets.QMessageBox.information(self, "Shortcuts", SHORTCUTS)

    def show_getting_started(self) -> None:
        """Help > Getting started: the workflow, a pointer to the shortcuts, where files go (non-modal)."""
        from ..core.project import untitled_projects_dir

        if self.getting_started is None:
            self.getting_started = GettingStartedDialog(untitled_projects_dir(), self)
        self.getting_started.show()
        self.getting_started.raise_()

    def preload_compute_modules(self, delay_ms: int = 1000) -> None:
        """Warm PyTorch up in the background soon after start (see :mod:`.warmup`)."""
        self.warm_up.start(delay_ms)

    # ------------------------------------------------------------------ training feedback

    def _adopt_calibrated_thresholds(self, written: bool) -> None:
        """Show the prediction with the thresholds the new model chose on its validation data, if any."""
        from ..core.predict import calibrated_overlay_thresholds

        thresholds = self.training.model_thresholds() if written else []
        shown = calibrated_overlay_thresholds(thresholds, len(self.view_state.thresholds))
        if shown is None:
            return
        self.view_state.update(thresholds=shown)
        k = next(i for i, t in enumerate(thresholds) if t > 0)
        name = self.session.classes[k].name if k < len(self.session.classes) else f"class {k + 1}"
        self.statusBar().showMessage(f"Threshold of {name} set to {thresholds[k]:.2f}, the best on the validation "
                                     "data (Prediction panel)", 8000)

    def _on_training_failed(self, message: str, details: str) -> None:
        self.training_panel.show_error(message)
        self.show_error("Training failed", message, details)

    # ------------------------------------------------------------------ Qt events

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        self.actions.open_paths([url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()])

    def restore_previous_model(self) -> None:
        """File > Restore Previous Model: swap the project's model with the one the last fresh run replaced."""
        self.training.restore_previous()  # a refusal is shown by _guarded
        self.show_status("Restored the previous model (the replaced one is now the previous model)", 10000)

    def show_object_at(self, y: float, x: float) -> None:
        """The measurements of the object under a picker click (when objects are shown)."""
        text = self.binder.object_text_at(int(round(y)), int(round(x)))
        if text:
            self.statusBar().showMessage(text.replace("\n", "  "), 15000)
            QtWidgets.QToolTip.showText(QtGui.QCursor.pos(), text, self.canvas)

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        if not self.actions.release_project():
            event.ignore()
            return
        self.session.close()
        self.binder.objects.shutdown()
        self.warm_up.join()
        for box in list(self._boxes):
            box.close()
        event.accept()
        window_closed(self)

