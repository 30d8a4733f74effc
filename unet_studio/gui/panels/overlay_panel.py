"""The overlay panel: how labels and predictions are shown, accepting a prediction, predicting everything.

Every control emits one signal with its new value; the canvas and the session listen. Setters that the
session calls (to restore a project's display state) block the panel's own signals, so nothing echoes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from PySide6 import QtCore, QtGui, QtWidgets

log = logging.getLogger(__name__)

PREDICTION_MODES = (("off", "Off"), ("probability", "Probability"), ("argmax", "Argmax labels"))
DEFAULT_THRESHOLD = 0.5
_SLIDER_STEPS = 100


def _percent_slider(value: float) -> QtWidgets.QSlider:
    slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
    slider.setRange(0, _SLIDER_STEPS)
    slider.setValue(int(round(value * _SLIDER_STEPS)))
    return slider


def _swatch(color) -> QtGui.QIcon:
    """A small square icon of ``color`` (QColor, '#rrggbb', or an (r, g, b[, a]) tuple of 0..255)."""
    if isinstance(color, (tuple, list)):
        qcolor = QtGui.QColor(*(int(c) for c in color))
    else:
        qcolor = QtGui.QColor(color)
    pixmap = QtGui.QPixmap(12, 12)
    pixmap.fill(qcolor)
    return QtGui.QIcon(pixmap)


class OverlayPanel(QtWidgets.QWidget):
    """Label and prediction overlay controls, "Accept prediction" and "Predict all".

    Signals
    -------
    label_opacity_changed(float)
        0..1.
    labels_visible_changed(bool)
    prediction_mode_changed(str)
        ``"off"``, ``"probability"`` or ``"argmax"``.
    prediction_class_changed(int)
        Class index ``k`` (0-based: output channel k = class value k+1).
    prediction_opacity_changed(float)
        0..1.
    threshold_changed(int, float)
        ``(k, threshold)`` with the threshold in 0..1.
    accept_requested(), predict_all_requested(), cancel_requested()
    """

    label_opacity_changed = QtCore.Signal(float)
    labels_visible_changed = QtCore.Signal(bool)
    prediction_mode_changed = QtCore.Signal(str)
    prediction_class_changed = QtCore.Signal(int)
    prediction_opacity_changed = QtCore.Signal(float)
    threshold_changed = QtCore.Signal(int, float)
    accept_requested = QtCore.Signal()
    predict_all_requested = QtCore.Signal()
    cancel_requested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self._thresholds: list[float] = []
        self._build()
        self._connect()
        self.set_busy(False)

    # ------------------------------------------------------------------ construction

    def _build(self) -> None:
        self.labels_visible_check = QtWidgets.QCheckBox("Show labels")
        self.labels_visible_check.setChecked(True)
        self.label_opacity_slider = _percent_slider(0.5)
        self.label_opacity_slider.setToolTip("Opacity of the painted labels")
        self.mode_combo = QtWidgets.QComboBox()
        for mode, text in PREDICTION_MODES:
            self.mode_combo.addItem(text, mode)
        self.class_combo = QtWidgets.QComboBox()
        self.class_combo.setToolTip("Class whose probability map is shown and thresholded")
        self.prediction_opacity_slider = _percent_slider(0.5)
        self.prediction_opacity_slider.setToolTip("Opacity of the prediction overlay")
        self.threshold_slider = _percent_slider(DEFAULT_THRESHOLD)
        self.threshold_slider.setToolTip("Probability threshold of the selected class")
        self.threshold_label = QtWidgets.QLabel(f"{DEFAULT_THRESHOLD:.2f}")
        self.threshold_label.setMinimumWidth(32)
        self.accept_button = QtWidgets.QPushButton("Accept prediction")
        self.accept_button.setToolTip("Copy the prediction of the current slice into the labels")
        self.predict_all_button = QtWidgets.QPushButton("Predict all")
        self.predict_all_button.setToolTip("Predict every slice of every image in the background")
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%v/%m")

        labels_box = QtWidgets.QGroupBox("Labels")
        labels_form = QtWidgets.QFormLayout(labels_box)
        labels_form.addRow(self.labels_visible_check)
        labels_form.addRow("Opacity", self.label_opacity_slider)

        threshold_row = QtWidgets.QHBoxLayout()
        threshold_row.addWidget(self.threshold_slider, 1)
        threshold_row.addWidget(self.threshold_label)
        prediction_box = QtWidgets.QGroupBox("Prediction")
        prediction_form = QtWidgets.QFormLayout(prediction_box)
        prediction_form.addRow("Show", self.mode_combo)
        prediction_form.addRow("Class", self.class_combo)
        prediction_form.addRow("Opacity", self.prediction_opacity_slider)
        prediction_form.addRow("Threshold", threshold_row)
        prediction_form.addRow(self.accept_button)
        run_row = QtWidgets.QHBoxLayout()
        run_row.addWidget(self.predict_all_button, 1)
        run_row.addWidget(self.cancel_button)
        prediction_form.addRow(run_row)
        prediction_form.addRow(self.progress_bar)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(labels_box)
        layout.addWidget(prediction_box)
        layout.addStretch(1)

    def _connect(self) -> None:
        self.labels_visible_check.toggled.connect(self.labels_visible_changed)
        self.label_opacity_slider.valueChanged.connect(
            lambda value: self.label_opacity_changed.emit(value / _SLIDER_STEPS)
        )
        self.mode_combo.currentIndexChanged.connect(
            lambda index: self.prediction_mode_changed.emit(self.mode_combo.itemData(index))
        )
        self.class_combo.currentIndexChanged.connect(self._on_class_changed)
        self.prediction_opacity_slider.valueChanged.connect(
            lambda value: self.prediction_opacity_changed.emit(value / _SLIDER_STEPS)
        )
        self.threshold_slider.valueChanged.connect(self._on_threshold_moved)
        self.accept_button.clicked.connect(self.accept_requested)
        self.predict_all_button.clicked.connect(self.predict_all_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)

    # ------------------------------------------------------------------ public API

    def set_classes(self, names: Sequence[str], colors: Sequence | None = None) -> None:
        """Fill the class combo with the predicted classes (index k = class value k+1).

        Keeps the selected class and the thresholds of classes that remain; new classes start at
        :data:`DEFAULT_THRESHOLD`. Emits nothing.
        """
        colors = list(colors) if colors is not None else [None] * len(names)
        current = max(self.class_combo.currentIndex(), 0)
        with QtCore.QSignalBlocker(self.class_combo):
            self.class_combo.clear()
            for name, color in zip(names, colors + [None] * (len(names) - len(colors))):
                if color is None:
                    self.class_combo.addItem(str(name))
                else:
                    self.class_combo.addItem(_swatch(color), str(name))
            self._thresholds = (self._thresholds + [DEFAULT_THRESHOLD] * len(names))[: len(names)]
            if names:
                self.class_combo.setCurrentIndex(min(current, len(names) - 1))
        self._show_threshold_of_current_class()

    def set_busy(self, busy: bool) -> None:
        """Switch between idle and "Predict all" running (Cancel enabled, progress shown)."""
        self.predict_all_button.setEnabled(not busy)
        self.accept_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)
        self.progress_bar.setVisible(busy)
        if busy:
            self.set_progress(0, 1)

    def set_progress(self, done: int, total: int) -> None:
        """Show ``done`` of ``total`` steps of "Predict all"."""
        total = max(int(total), 1)
        self.progress_bar.setRange(0, total)
        self.progress_bar.setValue(min(max(int(done), 0), total))

    # getters and echo-free setters, for the session and for restoring a project's display state

    def prediction_mode(self) -> str:
        return self.mode_combo.currentData()

    def prediction_class(self) -> int:
        return self.class_combo.currentIndex()

    def threshold(self, k: int) -> float:
        """Threshold of class index ``k``."""
        return self._thresholds[k]

    def thresholds(self) -> list[float]:
        """Thresholds of every class, in class index order."""
        return list(self._thresholds)

    def state(self) -> dict:
        """Everything the panel shows, as a JSON-able dict (see :meth:`set_state`)."""
        return {
            "labels_visible": self.labels_visible_check.isChecked(),
            "label_opacity": self.label_opacity_slider.value() / _SLIDER_STEPS,
            "prediction_mode": self.prediction_mode(),
            "prediction_class": self.prediction_class(),
            "prediction_opacity": self.prediction_opacity_slider.value() / _SLIDER_STEPS,
            "thresholds": self.thresholds(),
        }

    def set_state(self, state: dict) -> None:
        """Show ``state`` (keys of :meth:`state`, each optional) without emitting any signal."""
        with QtCore.QSignalBlocker(self):
            if "labels_visible" in state:
                self.labels_visible_check.setChecked(bool(state["labels_visible"]))
            if "label_opacity" in state:
                self.label_opacity_slider.setValue(round(float(state["label_opacity"]) * _SLIDER_STEPS))
            if "prediction_mode" in state:
                index = self.mode_combo.findData(state["prediction_mode"])
                if index >= 0:
                    self.mode_combo.setCurrentIndex(index)
            if "prediction_opacity" in state:
                value = round(float(state["prediction_opacity"]) * _SLIDER_STEPS)
                self.prediction_opacity_slider.setValue(value)
            if "thresholds" in state:
                given = [float(t) for t in state["thresholds"]][: len(self._thresholds)]
                self._thresholds[: len(given)] = given
            k = state.get("prediction_class")
            if k is not None and 0 <= int(k) < self.class_combo.count():
                self.class_combo.setCurrentIndex(int(k))
            self._show_threshold_of_current_class()

    # ------------------------------------------------------------------ slots

    def _on_class_changed(self, index: int) -> None:
        self._show_threshold_of_current_class()
        if index >= 0:
            self.prediction_class_changed.emit(index)

    def _on_threshold_moved(self, value: int) -> None:
        threshold = value / _SLIDER_STEPS
        self.threshold_label.setText(f"{threshold:.2f}")
        k = self.class_combo.currentIndex()
        if 0 <= k < len(self._thresholds):
            self._thresholds[k] = threshold
            self.threshold_changed.emit(k, threshold)

    def _show_threshold_of_current_class(self) -> None:
        """Move the slider to the selected class's threshold without emitting ``threshold_changed``."""
        k = self.class_combo.currentIndex()
        threshold = self._thresholds[k] if 0 <= k < len(self._thresholds) else DEFAULT_THRESHOLD
        with QtCore.QSignalBlocker(self.threshold_slider):
            self.threshold_slider.setValue(round(threshold * _SLIDER_STEPS))
        self.threshold_label.setText(f"{threshold:.2f}")
        self.threshold_slider.setEnabled(0 <= k < len(self._thresholds))
