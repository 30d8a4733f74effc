"""The training panel: a few settings, a Train/Stop button, progress with ETA, loss and validation curves.

The panel only shows things and asks for things: it emits ``start_requested(TrainingRequest)`` and
``stop_requested()``, and the window calls :meth:`TrainingPanel.start_run` and
:meth:`TrainingPanel.set_running`, :meth:`TrainingPanel.show_progress` with each
:class:`~unet_studio.core.train.TrainProgress`, and :meth:`TrainingPanel.show_outcome` when a run has ended.

The progress bar follows the steps, or the time when a time limit is what will end the run. A validation
score says what it was computed on (held-out pixels, images and slices), or that there is not enough to
compute one. The curves of consecutive runs share one step axis (:mod:`.training_plots`).
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

from PySide6 import QtCore, QtWidgets

from ...core.presets import PRESETS
from ...resources import STARTING_MODELS
from ...core.progress import format_duration
from ..controllers.training_request import TrainingOutcome, TrainingRequest
from .training_plots import CurvePlot, RunCurves

if TYPE_CHECKING:  # the panel must not import PyTorch at start-up
    from ...core.train import TrainProgress

log = logging.getLogger(__name__)


VAL_TITLE = "Validation (held-out labels)"
NEW, CURRENT = "new", "current"
#: The "Start from" choices: (text, key); a key is "new", "current" or a starting model's name.
START_CHOICES = [("new model", NEW), *((m.label, m.name) for m in STARTING_MODELS.values()),
                 ("this project's model", CURRENT)]
NOT_ENOUGH_TITLE = "Validation: too few labels"


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class TrainingPanel(QtWidgets.QWidget):
    """Compact training controls and live training feedback.

    Signals
    -------
    start_requested(TrainingRequest)
        The settings the widgets show.
    stop_requested()
        The person clicked Stop.
    """

    start_requested = QtCore.Signal(object)
    stop_requested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._running = False
        self._build_settings()
        self._build_feedback()
        self._layout()
        self.train_button.clicked.connect(self._on_train_clicked)

    # ------------------------------------------------------------------ construction

    def _build_settings(self) -> None:
        self.preset_combo = QtWidgets.QComboBox()
        self.preset_combo.addItems(PRESETS)
        self.preset_combo.setToolTip("fast: small U-Net, quick feedback; classic: the paper's U-Net")
        self.minutes_spin = QtWidgets.QSpinBox()
        self.minutes_spin.setRange(0, 24 * 60)
        self.minutes_spin.setSuffix(" min")
        self.minutes_spin.setValue(5)
        self.seconds_spin = QtWidgets.QSpinBox()
        self.seconds_spin.setRange(0, 59)
        self.seconds_spin.setSuffix(" s")
        for spin in (self.minutes_spin, self.seconds_spin):
            spin.setToolTip("Stop training after this time (0 min 0 s: no time limit)")
        self.epochs_spin = QtWidgets.QSpinBox()
        self.epochs_spin.setRange(1, 100_000)
        self.epochs_spin.setValue(50)
        self.start_combo = QtWidgets.QComboBox()
        for text, key in START_CHOICES:
            self.start_combo.addItem(text, key)
            if key in STARTING_MODELS:  # what it was trained on, and its terms
                model = STARTING_MODELS[key]
                self.start_combo.setItemData(self.start_combo.count() - 1, f"{model.description}; {model.licence}",
                                             QtCore.Qt.ItemDataRole.ToolTipRole)
        self.start_combo.setToolTip(
            "new model: train from scratch. A bundled model: start from its weights and fine-tune it on your "
            "labels (its first prediction shows at once). This project's model: continue its training")
        self.snap_check = QtWidgets.QCheckBox("Snap to edges")
        self.snap_check.setChecked(True)
        self.snap_check.setToolTip(
            "With scribbles: draw class boundaries on intensity edges, where your strokes do not say where a "
            "structure ends (untick if objects come out smaller than they are). No effect on fully painted labels")
        self.train_button = QtWidgets.QPushButton("Train")
        self._settings_widgets = (
            self.preset_combo,
            self.minutes_spin,
            self.seconds_spin,
            self.epochs_spin,
            self.start_combo,
            self.snap_check,
        )

    def _build_feedback(self) -> None:
        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setTextVisible(True)
        self.progress_bar.setFormat("")
        self.device_label = QtWidgets.QLabel("Device: -")
        self.status_label = QtWidgets.QLabel("")
        self.status_label.setWordWrap(True)
        self.validation_label = QtWidgets.QLabel("Validation: -")
        self.error_label = QtWidgets.QLabel("")
        # Long unbreakable texts (a model folder path) must not widen the panel beyond the screen.
        for label in (self.status_label, self.error_label, self.validation_label, self.device_label):
            label.setWordWrap(True)
            label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.error_label.setStyleSheet("color: #d04040;")
        self.error_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        self.loss_plot = CurvePlot("Loss", [("loss", "#4aa3ff")])
        self.val_plot = CurvePlot(VAL_TITLE, [("mean F1", "#ffb000"), ("mean IoU", "#50c878")])
        self.curves = RunCurves(self.loss_plot, self.val_plot)
        self.loss_curve = self.loss_plot.curves["loss"]
        self.f1_curve = self.val_plot.curves["mean F1"]
        self.iou_curve = self.val_plot.curves["mean IoU"]

    def _layout(self) -> None:
        form = QtWidgets.QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Preset", self.preset_combo)
        time_row = QtWidgets.QHBoxLayout()
        time_row.addWidget(self.minutes_spin)
        time_row.addWidget(self.seconds_spin)
        form.addRow("Time limit", time_row)
        form.addRow("Epochs", self.epochs_spin)
        form.addRow("Start from", self.start_combo)
        form.addRow("", self.snap_check)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.train_button)
        layout.addWidget(self.progress_bar)
        layout.addWidget(self.device_label)
        layout.addWidget(self.status_label)
        layout.addWidget(self.error_label)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.val_plot)
        layout.addWidget(self.validation_label)
        layout.addStretch(1)

    # ------------------------------------------------------------------ public API

    def settings(self) -> TrainingRequest:
        """The settings the widgets show, as emitted by ``start_requested``."""
        seconds = self.minutes_spin.value() * 60 + self.seconds_spin.value()
        start = self.start_from()
        return TrainingRequest(preset=self.preset_combo.currentText(),
                               time_limit_s=float(seconds) if seconds > 0 else None,
                               epochs=self.epochs_spin.value(), continue_training=start == CURRENT,
                               starting_model=start if start in STARTING_MODELS else "",
                               snap_to_edges=self.snap_check.isChecked())

    def set_settings(self, request: TrainingRequest) -> None:
        """Show ``request`` in the widgets (emits nothing)."""
        self.preset_combo.setCurrentText(request.preset)
        seconds = int(round(request.time_limit_s or 0))
        self.minutes_spin.setValue(seconds // 60)
        self.seconds_spin.setValue(seconds % 60)
        self.epochs_spin.setValue(request.epochs)
        self.set_start_from(request.start_from)
        self.snap_check.setChecked(request.snap_to_edges)

    def start_from(self) -> str:
        """The "Start from" choice: "new", "current" (this project's model) or a starting model's name."""
        return str(self.start_combo.currentData())

    def set_start_from(self, key: str) -> None:
        """Show the "Start from" choice ``key`` (an unknown key shows "new model"; emits nothing)."""
        index = self.start_combo.findData(key)
        self.start_combo.setCurrentIndex(max(index, 0))

    def set_continue_available(self, available: bool) -> None:
        """Offer "this project's model" only when the project has a model to continue from."""
        item = self.start_combo.model().item(self.start_combo.findData(CURRENT))
        item.setEnabled(bool(available))
        if not available and self.start_from() == CURRENT:
            self.set_start_from(NEW)

    def adopt_trained_model(self) -> None:
        """After a run that started from a bundled model, the next run continues the model it fine-tuned.

        Starting from the bundled weights again would throw that fine-tuning away (it is still kept in
        models/previous, but a person pressing Train twice means "more", as in ilastik).
        """
        if self.start_from() in STARTING_MODELS and self.continue_available():
            self.set_start_from(CURRENT)

    def continue_available(self) -> bool:
        """Whether "this project's model" can be chosen now."""
        item = self.start_combo.model().item(self.start_combo.findData(CURRENT))
        return item.isEnabled() and self.start_combo.isEnabled()

    def is_running(self) -> bool:
        """True between ``set_running(True)`` and ``set_running(False)``."""
        return self._running

    def set_running(self, running: bool) -> None:
        """Switch between idle (Train, settings editable) and running (Stop, settings locked)."""
        self._running = bool(running)
        self.train_button.setText("Stop" if running else "Train")
        self.train_button.setEnabled(True)
        for widget in self._settings_widgets:
            widget.setEnabled(not running)
        if running:
            self.error_label.hide()
            self.status_label.setText("Starting...")

    def set_device_text(self, text: str) -> None:
        """Show the compute device (GPU name or CPU)."""
        self.device_label.setText(f"Device: {text}")

    def start_run(self) -> None:
        """A run starts: clear progress, figures and errors; its curves continue the earlier runs' axis."""
        self._clear_feedback()
        self.curves.new_run()

    def reset(self) -> None:
        """Clear progress, every run's curves, validation figures and errors (settings stay)."""
        self._clear_feedback()
        self.curves.clear()

    def _clear_feedback(self) -> None:
        self.val_plot.setTitle(VAL_TITLE, size="9pt")
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("")
        self.validation_label.setText("Validation: -")
        self.validation_label.setToolTip("")
        self.status_label.setText("")
        self.error_label.clear()
        self.error_label.hide()

    def show_error(self, message: str) -> None:
        """Show an error message (a failed run) under the progress bar."""
        self.error_label.setText(message)
        self.error_label.show()
        self.status_label.setText("Training failed")

    def show_progress(self, progress: TrainProgress) -> None:
        """Update progress bar, curves, figures and status text from one report of the running training."""
        x = self.curves.x(progress.step)
        self._show_bar(progress)
        if math.isfinite(progress.loss):
            self.loss_plot.add_point("loss", x, progress.loss)
        if progress.val is not None:
            self._show_validation(x, progress.val, progress.best_score)
        self.curves.show_up_to(x)
        self.status_label.setText(self._status_text(progress))
        if progress.device:
            self.set_device_text(progress.device)

    def show_outcome(self, outcome: TrainingOutcome) -> None:
        """State how the run ended (done, stopped, failed) and where its model was saved; no ETA is left."""
        self.status_label.setText(outcome.text())
        self.status_label.setToolTip(str(outcome.model_dir or ""))
        if outcome.state == "done":
            self.progress_bar.setValue(self.progress_bar.maximum())
            self.progress_bar.setFormat(f"done · {outcome.steps} steps")
        elif outcome.state == "stopped":
            self.progress_bar.setFormat(f"stopped at step {outcome.steps}")
        else:
            self.progress_bar.setFormat("failed")

    # ------------------------------------------------------------------ helpers

    def _show_bar(self, progress: TrainProgress) -> None:
        """Steps, or time when the time limit ends the run (whichever of the two comes first)."""
        step, total = progress.step, progress.total_steps
        if progress.time_bound():
            self.progress_bar.setRange(0, 1000)
            self.progress_bar.setValue(1000 if progress.done else round(1000 * progress.fraction_done()))
            text = (f"{format_duration(progress.elapsed_s)} / {format_duration(progress.time_limit_s)}"
                    f" · step {step}")
        else:
            maximum = max(total, 1)
            self.progress_bar.setRange(0, maximum)
            self.progress_bar.setValue(maximum if progress.done else min(step, maximum))
            text = f"step {step}/{total or '?'}"
        self.progress_bar.setFormat(f"done · {text}" if progress.done
                                    else f"{text} · ETA {format_duration(progress.eta_s)}")

    def _show_validation(self, x: float, val: dict, best: float | None) -> None:
        step = int(x)
        if val.get("enough") is False:
            # No number at all: a score on a few held-out strokes, or with a class missing, is not evidence.
            self.validation_label.setText(
                f"Validation (step {step}): not enough held-out labels to validate"
                f" ({val.get('reason') or 'too few'}); the latest model is kept")
            self.validation_label.setToolTip("Paint more of each class (on another slice or image is best); "
                                             "accepted predictions are never used for validation.")
            self.val_plot.setTitle(NOT_ENOUGH_TITLE, size="9pt")
            return
        self.val_plot.setTitle(VAL_TITLE, size="9pt")
        f1, iou = _finite(val.get("mean_f1")), _finite(val.get("mean_iou"))
        if f1 is not None:
            self.val_plot.add_point("mean F1", x, f1)
        if iou is not None:
            self.val_plot.add_point("mean IoU", x, iou)
        text = f"F1 {f1:.3f}" if f1 is not None else "F1 -"
        text += f" · IoU {iou:.3f}" if iou is not None else " · IoU -"
        pixels = val.get("pixels")
        if pixels is not None:
            text += f" on {int(pixels):,} px"
            if val.get("where"):
                text += f" of {val['where']}"
        parts = [text]
        if _finite(best) is not None:
            # The kept model's score: the best of the run's last (upright) phase, which restarts the count,
            # so it can be below an earlier point of the plot.
            parts.append(f"kept model {best:.3f}")
        fraction = _finite(val.get("labelled_fraction"))
        if fraction is not None and fraction < 0.5:
            parts.append("strokes only: likely optimistic")
        self.validation_label.setText(f"Validation (step {step}): " + " · ".join(parts))
        val_loss = _finite(val.get("loss"))
        self.validation_label.setToolTip(
            "Scored on held-out labels a person painted (never on accepted predictions). 'kept model': the score "
            "of the model that is saved, the best of the run's last phase (without rotations)"
            + (f"; validation loss {val_loss:.4f}" if val_loss is not None else ""))

    @staticmethod
    def _status_text(progress: TrainProgress) -> str:
        if progress.done:
            saved = f"model saved to {progress.model_dir}" if progress.model_dir else "nothing saved"
            return f"Done after {progress.step} steps ({progress.stop_reason or 'finished'}): {saved}"
        parts = [f"epoch {progress.epoch}"]
        if math.isfinite(progress.samples_per_s):
            parts.append(f"{progress.samples_per_s:.1f} samples/s")
        parts.append(f"elapsed {format_duration(progress.elapsed_s)}")
        if progress.notice:
            parts.append(progress.notice)
        return " · ".join(parts)

    def _on_train_clicked(self) -> None:
        if self._running:
            # The run stops at its next step; the session calls set_running(False) once it has ended.
            self.train_button.setEnabled(False)
            self.train_button.setText("Stopping...")
            self.stop_requested.emit()
        else:
            request = self.settings()
            log.debug("training requested: %s", request)
            self.start_requested.emit(request)
