"""The overlay panel: how labels and predictions are shown, accepting a prediction, predicting everything.

The panel mirrors a :class:`~unet_studio.gui.view_state.ViewState`: each control writes the person's
choice into the state, and the panel follows every change of the state (made by a control, a restored
project or a finished training) by updating its widgets with their signals blocked, so nothing echoes.
Only the buttons emit signals of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from PySide6 import QtCore, QtGui, QtWidgets

from ..view_state import PREDICTION_MODES, ViewState

log = logging.getLogger(__name__)

MODE_TEXTS = {"off": "Off", "probability": "Probability", "argmax": "Labels", "objects": "Objects"}
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
    """Label and prediction overlay controls bound to a view state; "Accept prediction" and "Predict all".

    Signals
    -------
    accept_requested(), predict_all_requested(), cancel_requested()
        The person clicked the button.
    """

    accept_requested = QtCore.Signal()
    predict_all_requested = QtCore.Signal()
    cancel_requested = QtCore.Signal()

    def __init__(self, view: ViewState, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self._build()
        self._connect()
        self.set_busy(False)
        for name in ViewState.FIELDS:
            self._follow(name, None)
        view.connect(self._follow)

    # ------------------------------------------------------------------ construction

    def _build(self) -> None:
        self.labels_visible_check = QtWidgets.QCheckBox("Show labels")
        self.label_opacity_slider = _percent_slider(0.5)
        self.label_opacity_slider.setToolTip("Opacity of the painted labels")
        self.mode_combo = QtWidgets.QComboBox()
        for mode in PREDICTION_MODES:
            self.mode_combo.addItem(MODE_TEXTS[mode], mode)
        self.mode_combo.setToolTip("Probability: how sure the model is of one class; Labels: the class it "
                                   "predicts for each pixel; Objects: each object its colour (click one with "
                                   "the picker, L, for its measurements)")
        self.class_combo = QtWidgets.QComboBox()
        self.class_combo.setToolTip("Class whose probability map is shown and thresholded")
        self.prediction_opacity_slider = _percent_slider(0.5)
        self.prediction_opacity_slider.setToolTip("Opacity of the prediction overlay")
        self.threshold_slider = _percent_slider(0.5)
        self.threshold_slider.setToolTip("Probability threshold of the selected class")
        self.threshold_label = QtWidgets.QLabel()
        self.threshold_label.setMinimumWidth(32)
        self.accept_button = QtWidgets.QPushButton("Accept prediction")
        self.accept_button.setToolTip("Copy the prediction of the current slice into the labels")
        self.predict_all_button = QtWidgets.QPushButton("Predict all")
        self.predict_all_button.setToolTip("Predict this slice, this stack or all images (you choose)")
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.progress_bar = QtWidgets.QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.progress_bar.setFormat("%v/%m")
        # The bar keeps its place when hidden, so the panel does not jump when a prediction starts.
        policy = self.progress_bar.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.progress_bar.setSizePolicy(policy)

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
        view = self.view
        self.labels_visible_check.toggled.connect(lambda on: view.update(labels_visible=on))
        self.label_opacity_slider.valueChanged.connect(
            lambda value: view.update(label_opacity=value / _SLIDER_STEPS))
        self.mode_combo.currentIndexChanged.connect(
            lambda index: view.update(prediction_mode=self.mode_combo.itemData(index)))
        self.class_combo.currentIndexChanged.connect(
            lambda index: view.update(prediction_class=index) if index >= 0 else None)
        self.prediction_opacity_slider.valueChanged.connect(
            lambda value: view.update(prediction_opacity=value / _SLIDER_STEPS))
        self.threshold_slider.valueChanged.connect(
            lambda value: view.set_threshold(self.class_combo.currentIndex(), value / _SLIDER_STEPS))
        self.accept_button.clicked.connect(self.accept_requested)
        self.predict_all_button.clicked.connect(self.predict_all_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)

    # ------------------------------------------------------------------ the view state -> widgets

    def _follow(self, name: str, _value) -> None:
        """Show the state's ``name`` in its widget, without the widget writing it back."""
        view = self.view
        if name == "labels_visible":
            with QtCore.QSignalBlocker(self.labels_visible_check):
                self.labels_visible_check.setChecked(view.labels_visible)
        elif name == "label_opacity":
            with QtCore.QSignalBlocker(self.label_opacity_slider):
                self.label_opacity_slider.setValue(round(view.label_opacity * _SLIDER_STEPS))
        elif name == "prediction_opacity":
            with QtCore.QSignalBlocker(self.prediction_opacity_slider):
                self.prediction_opacity_slider.setValue(round(view.prediction_opacity * _SLIDER_STEPS))
        elif name == "prediction_mode":
            with QtCore.QSignalBlocker(self.mode_combo):
                self.mode_combo.setCurrentIndex(max(self.mode_combo.findData(view.prediction_mode), 0))
        elif name in ("prediction_class", "thresholds"):
            self._show_class_and_threshold()

    def _show_class_and_threshold(self) -> None:
        view = self.view
        k = view.prediction_class
        known = 0 <= k < len(view.thresholds) and k < self.class_combo.count()
        with QtCore.QSignalBlocker(self.class_combo):
            if known:
                self.class_combo.setCurrentIndex(k)
        threshold = view.threshold(k)
        with QtCore.QSignalBlocker(self.threshold_slider):
            self.threshold_slider.setValue(round(threshold * _SLIDER_STEPS))
        self.threshold_label.setText(f"{threshold:.2f}")
        self.threshold_slider.setEnabled(known)

    # ------------------------------------------------------------------ public API

    def set_classes(self, names: Sequence[str], colors: Sequence | None = None) -> None:
        """Offer the predicted classes (index k = class value k+1), each with its colour swatch."""
        colors = list(colors) if colors is not None else []
        colors += [None] * (len(names) - len(colors))
        with QtCore.QSignalBlocker(self.class_combo):
            self.class_combo.clear()
            for name, color in zip(names, colors):
                if color is None:
                    self.class_combo.addItem(str(name))
                else:
                    self.class_combo.addItem(_swatch(color), str(name))
        self.view.set_class_count(len(names))
        self._show_class_and_threshold()

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
