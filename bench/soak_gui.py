"""The soak's GUI-side session (``bench/soak.py --gui``): the same cycle as :class:`CoreSession`, through
the real main window with ``QT_QPA_PLATFORM=offscreen``.

Per cycle: strokes through the session as the brush tool makes them (with the event loop running
between mouse moves, so the canvas redraws and autosave fires), two undos and a redo; Train (the
training controller, as the button does; every other cycle "continue training") with previews shown in
the overlay and a stroke painted while it trains (pushed into the running training), Stop after
``train_seconds`` (every fourth cycle it ends at its own time limit); Predict all images; "accept
prediction" on a predicted image; Export everything (labels, probabilities, instances, measurements,
annotations, the model) into a folder; the cycle's edits undone. A failure is any exception, any
message the window shows the person (``show_error``), a controller's ``failed`` signal, a worker that
does not finish in time, or an export file that is missing.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from bench.soak_cycles import SoakCheckError, SoakSettings, input_files, isbi_root, scribbles, stroke_path
from unet_studio.gui.controllers.training_request import TrainingRequest


def _pump(app, seconds: float, until=None) -> bool:
    """Run the event loop for ``seconds`` or until ``until()``; True when ``until()`` became true."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        if until is not None and until():
            return True
        time.sleep(0.005)
    return until is None


class GuiSession:
    name = "gui"

    def __init__(self, settings: SoakSettings, workdir: Path) -> None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        os.environ["UNET_STUDIO_CONFIG_DIR"] = str(Path(workdir) / "config")
        from PySide6 import QtWidgets

        from unet_studio.gui.main_window import MainWindow

        self.settings = settings
        self.workdir = Path(workdir)
        self.export_dir = self.workdir / "export"
        self.app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["unet-studio-soak"])
        self.window = window = MainWindow()
        window.resize(1400, 880)
        window.show()
        root = isbi_root()
        self.train_files = [root / "images" / f"{i:03d}.tif" for i in settings.train_slices]
        self.predict_files = input_files(settings, self.workdir)
        for path in self.train_files + self.predict_files:
            window.open_image(path)
        session = window.session
        for image_index, slice_index in enumerate(settings.train_slices):
            session.set_current(image_index, 0)
            session.editing.set_slice_labels(scribbles(slice_index))
        self.errors: list[str] = []
        window.training.failed.connect(lambda text, details: self.errors.append(f"training: {text}\n{details}"))
        window.prediction.failed.connect(lambda text, details: self.errors.append(f"prediction: {text}\n{details}"))
        window.training.config_hook = self._configure
        self.previews = self.steps = 0
        window.training.preview_shown.connect(lambda *_: setattr(self, "previews", self.previews + 1))
        window.training.progressed.connect(lambda progress: setattr(self, "steps", progress.step))
        self.rng = np.random.default_rng(0)
        _pump(self.app, 0.2)

    def _configure(self, model_config, train_config):
        tiny_model, tiny_train = self.settings.configs()
        changes = {"preview_every": self.settings.preview_every, "eval_every": self.settings.eval_every}
        if self.settings.threads:
            changes["num_threads"] = self.settings.threads
        if self.settings.tiny:
            changes.update(patch_size=tiny_train.patch_size, batch_size=tiny_train.batch_size)
            model_config = tiny_model.replace(in_channels=model_config.in_channels, n_classes=model_config.n_classes)
        return model_config, train_config.replace(**changes)

    def _check_errors(self, what: str) -> None:
        window = self.window
        if window.last_error is not None:
            self.errors.append(f"the window showed: {window.last_error[0]}: {window.last_error[1]}")
            window.last_error = None
        for box in list(window._boxes):  # noqa: SLF001 - the soak closes what a person would close
            box.close()
        if self.errors:
            errors, self.errors = self.errors, []
            raise SoakCheckError(f"{what}: " + " | ".join(e[:1500] for e in errors))

    # -- the cycle ----------------------------------------------------------------------------------

    def cycle(self, index: int) -> dict:
        window, session, app = self.window, self.window.session, self.app
        settings = self.settings
        self.previews = self.steps = 0
        edited: list[int] = []
        # Strokes on a training image, as the brush makes them, then two undos and a redo.
        image = index % len(self.train_files)
        session.set_current(image, 0)
        for _ in range(settings.strokes):
            edited += self._stroke(image)
        for _ in range(2):
            if edited and session.editing.undo():
                edited.pop()
        if session.current.labels.can_redo and session.editing.redo():
            edited.append(image)
        self._check_errors("painting")

        # Train, with a stroke while it runs; Stop (or the time limit every fourth cycle).
        ends_itself = index % 4 == 3
        limit = settings.train_seconds if ends_itself else settings.train_seconds * 10
        window.training.start(TrainingRequest("fast", time_limit_s=limit,
                                              continue_training=index % 2 == 1 and session.model_dir is not None))
        _pump(app, settings.train_seconds / 2)
        edited += self._stroke(image)
        if not ends_itself:
            _pump(app, settings.train_seconds / 2)
            window.training.stop()
        if not _pump(app, max(120.0, 10 * settings.train_seconds), until=lambda: not window.training.is_running()):
            raise SoakCheckError("training did not stop within the time limit")
        self._check_errors("training")
        if session.model_dir is None:
            raise SoakCheckError("training wrote no model")
        steps = self.steps

        # Predict all images, accept the prediction of the first predicted image, export everything.
        window.prediction.predict("all")
        if not _pump(app, 600, until=lambda: not window.prediction.is_running()):
            raise SoakCheckError("prediction did not finish in 600 s")
        self._check_errors("prediction")
        first_predicted = len(self.train_files)
        session.set_current(first_predicted, 0)
        before = session.current.labels.version
        window.accept_prediction()
        if session.current.labels.version != before:
            edited.append(first_predicted)
        window.prediction.export(self.export_dir, scope="all")
        if not _pump(app, 600, until=lambda: not window.prediction.is_running()):
            raise SoakCheckError("export did not finish in 600 s")
        self._check_errors("export")
        for state in session.images:
            for what in ("labels", "probabilities", "instances", "measurements"):
                suffix = "csv" if what == "measurements" else "tif"
                if not (self.export_dir / f"{state.name}_{what}.{suffix}").is_file():
                    raise SoakCheckError(f"export wrote no {state.name}_{what}.{suffix}")

        # Undo this cycle's edits, newest first; let the autosave write.
        undone = 0
        for image_index in reversed(edited):
            session.set_current(image_index, 0)
            undone += session.editing.undo()
        if undone != len(edited):
            raise SoakCheckError(f"undid {undone} of {len(edited)} edits")
        _pump(app, 0.1)
        session.save_in_background()
        session.wait_for_writer()
        _pump(app, 0.1)
        self._check_errors("saving")
        history = sum(s.labels.history_bytes for s in session.images)
        return {"steps": steps, "previews": self.previews, "edits": len(edited), "undo_history_kb": history / 1024,
                "images_predicted": len(session.images), "train_seconds": settings.train_seconds}

    def _stroke(self, image_index: int) -> list[int]:
        """One brush stroke through the session, the event loop running between mouse moves."""
        session, app = self.window.session, self.app
        state = session.images[image_index]
        before = state.labels.version
        session.editing.begin_stroke()
        path = stroke_path(self.rng, state.labels.shape[1:])
        value = int(self.rng.integers(0, 3))
        radius = float(self.rng.uniform(1.5, 6))
        for a, b in zip(path[:-1], path[1:]):
            session.editing.paint_line(a, b, radius, value)
            app.processEvents()
        session.editing.end_stroke()
        return [image_index] if state.labels.version != before else []

    def close(self) -> None:
        window = self.window
        window.training.shutdown()
        window.prediction.shutdown()
        window.session.discard_untitled()
        window.close()
        window.deleteLater()
        _pump(self.app, 0.2)
