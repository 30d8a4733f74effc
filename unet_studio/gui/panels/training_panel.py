"""The training panel: a few settings, a Train/Stop button, progress with ETA, loss and validation curves.

The panel only shows things and asks for things: it emits ``start_requested(settings)`` and
``stop_requested()``, and the session that runs the training calls :meth:`TrainingPanel.set_running`
and :meth:`TrainingPanel.show_progress`. It reads progress objects with ``getattr`` and defaults, so it
works with any object that has (some of) the fields of ``core.training.TrainProgress``.
"""

from __future__ import annotations

import logging
import math

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

log = logging.getLogger(__name__)

PRESETS = ("fast", "classic")
_PLOT_HEIGHT = 110


def format_duration(seconds: float | None) -> str:
    """``m:ss`` (or ``h:mm:ss`` from an hour on); ``-:--`` when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "-:--"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class _CurvePlot(pg.PlotWidget):
    """A small plot of one or more named curves that grow point by point."""

    def __init__(self, title: str, names_and_colors: list[tuple[str, str]], parent=None) -> None:
        super().__init__(parent=parent)
        self.setMinimumHeight(_PLOT_HEIGHT)
        self.setMaximumHeight(2 * _PLOT_HEIGHT)
        self.setTitle(title, size="9pt")
        self.setMenuEnabled(False)
        self.showGrid(x=True, y=True, alpha=0.2)
        if len(names_and_colors) > 1:
            self.addLegend(offset=(-5, 5), labelTextSize="8pt")
        self.curves: dict[str, pg.PlotDataItem] = {}
        self._points: dict[str, tuple[list[float], list[float]]] = {}
        for name, color in names_and_colors:
            self.curves[name] = self.plot([], [], pen=pg.mkPen(color, width=1.5), name=name)
            self._points[name] = ([], [])

    def add_point(self, name: str, x: float, y: float) -> None:
        xs, ys = self._points[name]
        if xs and x <= xs[-1]:
            return  # the same step reported twice (e.g. the final item): keep the curve monotonic
        xs.append(x)
        ys.append(y)
        self.curves[name].setData(xs, ys)

    def clear_points(self) -> None:
        for name, (xs, ys) in self._points.items():
            xs.clear()
            ys.clear()
            self.curves[name].setData([], [])


class TrainingPanel(QtWidgets.QWidget):
    """Compact training controls and live training feedback.

    Signals
    -------
    start_requested(dict)
        Keys: ``preset`` (str), ``time_limit_s`` (float, or None for no limit), ``epochs`` (int),
        ``continue_training`` (bool).
    stop_requested()
        The person clicked Stop.
    """

    start_requested = QtCore.Signal(dict)
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
        self.continue_check = QtWidgets.QCheckBox("Continue from current model")
        self.continue_check.setToolTip("Start from the current model's weights instead of from scratch")
        self.train_button = QtWidgets.QPushButton("Train")
        self._settings_widgets = (
            self.preset_combo,
            self.minutes_spin,
            self.seconds_spin,
            self.epochs_spin,
            self.continue_check,
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
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: #d04040;")
        self.error_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.error_label.hide()
        self.loss_plot = _CurvePlot("Loss", [("loss", "#4aa3ff")])
        self.val_plot = _CurvePlot("Validation", [("mean F1", "#ffb000"), ("mean IoU", "#50c878")])
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
        form.addRow(self.continue_check)
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

    def settings(self) -> dict:
        """The settings the widgets show, as emitted by ``start_requested``."""
        seconds = self.minutes_spin.value() * 60 + self.seconds_spin.value()
        return {
            "preset": self.preset_combo.currentText(),
            "time_limit_s": float(seconds) if seconds > 0 else None,
            "epochs": self.epochs_spin.value(),
            "continue_training": self.continue_check.isChecked(),
        }

    def set_settings(self, settings: dict) -> None:
        """Show ``settings`` (keys as in :meth:`settings`, each optional) without emitting anything."""
        if settings.get("preset") in PRESETS:
            self.preset_combo.setCurrentText(settings["preset"])
        if "time_limit_s" in settings:
            seconds = int(round(settings["time_limit_s"] or 0))
            self.minutes_spin.setValue(seconds // 60)
            self.seconds_spin.setValue(seconds % 60)
        if "epochs" in settings:
            self.epochs_spin.setValue(int(settings["epochs"]))
        if "continue_training" in settings:
            self.continue_check.setChecked(bool(settings["continue_training"]))

    def set_continue_available(self, available: bool) -> None:
        """Enable "continue from current model" only when there is a model to continue from."""
        self.continue_check.setEnabled(available and not self._running)
        if not available:
            self.continue_check.setChecked(False)

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

    def reset(self) -> None:
        """Clear progress, curves, validation figures and errors (settings stay)."""
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("")
        self.loss_plot.clear_points()
        self.val_plot.clear_points()
        self.validation_label.setText("Validation: -")
        self.status_label.setText("")
        self.error_label.clear()
        self.error_label.hide()

    def show_error(self, message: str) -> None:
        """Show an error message (a failed run) under the progress bar."""
        self.error_label.setText(message)
        self.error_label.show()
        self.status_label.setText("Training failed")

    def show_progress(self, progress) -> None:
        """Update progress bar, curves and figures from a ``TrainProgress`` (or any look-alike)."""
        step = int(getattr(progress, "step", 0) or 0)
        total = int(getattr(progress, "total_steps", 0) or 0)
        done = bool(getattr(progress, "done", False))
        eta = None if done else _finite(getattr(progress, "eta_s", None))
        maximum = max(total, 1)
        self.progress_bar.setRange(0, maximum)
        self.progress_bar.setValue(min(step, maximum))
        total_text = str(total) if total else "?"
        self.progress_bar.setFormat(f"step {step}/{total_text} · ETA {format_duration(eta)}")

        loss = _finite(getattr(progress, "loss", None))
        if loss is not None:
            self.loss_plot.add_point("loss", step, loss)
        val = getattr(progress, "val", None)
        if isinstance(val, dict):
            self._show_validation(step, val, progress)
        self.status_label.setText(self._status_text(progress, done))

    # ------------------------------------------------------------------ helpers

    def _show_validation(self, step: int, val: dict, progress) -> None:
        f1, iou = _finite(val.get("mean_f1")), _finite(val.get("mean_iou"))
        if f1 is not None:
            self.val_plot.add_point("mean F1", step, f1)
        if iou is not None:
            self.val_plot.add_point("mean IoU", step, iou)
        parts = [
            f"F1 {f1:.3f}" if f1 is not None else "F1 -",
            f"IoU {iou:.3f}" if iou is not None else "IoU -",
        ]
        val_loss = _finite(val.get("loss"))
        if val_loss is not None:
            parts.append(f"loss {val_loss:.4f}")
        best = _finite(getattr(progress, "best_score", None))
        if best is not None:
            parts.append(f"best {best:.3f}")
        self.validation_label.setText(f"Validation (step {step}): " + " · ".join(parts))

    @staticmethod
    def _status_text(progress, done: bool) -> str:
        if done:
            reason = getattr(progress, "stop_reason", None) or "finished"
            model_dir = getattr(progress, "model_dir", None)
            return f"Done: {reason}" + (f" (model saved to {model_dir})" if model_dir else "")
        parts = [f"epoch {getattr(progress, 'epoch', 0)}"]
        rate = _finite(getattr(progress, "samples_per_s", None))
        if rate is not None:
            parts.append(f"{rate:.1f} samples/s")
        elapsed = _finite(getattr(progress, "elapsed_s", None))
        if elapsed is not None:
            parts.append(f"elapsed {format_duration(elapsed)}")
        notice = getattr(progress, "notice", None)
        if notice:
            parts.append(notice)
        return " · ".join(parts)

    def _on_train_clicked(self) -> None:
        if self._running:
            # The run stops at its next step; the session calls set_running(False) once it has ended.
            self.train_button.setEnabled(False)
            self.train_button.setText("Stopping...")
            self.stop_requested.emit()
        else:
            settings = self.settings()
            log.debug("training requested with %s", settings)
            self.start_requested.emit(settings)
