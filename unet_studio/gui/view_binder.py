"""Keeps the canvas in step with the session and the view state.

Session -> canvas: the visible slice (raw image, labels, prediction), changed label boxes (only those
tiles are re-rendered), classes (colour tables). View state -> canvas: channel, contrast, label and
prediction opacity, label visibility, prediction mode, class and thresholds. Canvas -> session: the
slice slider. The text for the status bar (pixel value and class under the cursor) is made here too.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from .canvas import ImageCanvas, label_lut, probability_lut
from .panels.display_panel import DisplayPanel
from .panels.overlay_panel import OverlayPanel
from ..core.predict import probabilities_to_labels
from .session import Session
from .view_state import COMPOSITE, ViewState


class ViewBinder(QtCore.QObject):
    """Wires a session and a view state to a canvas; fills the panels' lists of channels and classes."""

    cursor_text = QtCore.Signal(str)

    def __init__(self, session: Session, view: ViewState, canvas: ImageCanvas, display: DisplayPanel,
                 overlay: OverlayPanel, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.view, self.canvas, self.display, self.overlay = session, view, canvas, display, overlay
        self._shown_image = -1

        session.current_changed.connect(self.show_current)
        session.labels_changed.connect(self._on_labels_changed)
        session.classes_changed.connect(self.update_classes)
        session.probabilities_changed.connect(self._on_probabilities_changed)
        canvas.slice_requested.connect(session.set_current_slice)
        canvas.cursor_moved.connect(self._on_cursor)
        for name in ViewState.FIELDS:
            self._on_view_changed(name, None)
        view.connect(self._on_view_changed)
        self.update_classes()

    def _on_view_changed(self, name: str, _value) -> None:
        view, canvas = self.view, self.canvas
        if name == "channel":
            canvas.set_channel(view.channel)
        elif name == "contrast":
            canvas.set_percentiles(*view.contrast)
        elif name == "label_opacity":
            canvas.set_label_opacity(view.label_opacity)
        elif name == "labels_visible":
            canvas.set_labels_visible(view.labels_visible)
        elif name == "prediction_opacity":
            canvas.set_prediction_opacity(view.prediction_opacity)
        else:  # mode, class, thresholds
            self.update_prediction()

    # ------------------------------------------------------------------ session -> canvas

    def show_current(self, image_index: int, slice_index: int) -> None:
        session, canvas = self.session, self.canvas
        state = session.current
        if state is None:
            canvas.set_raw(None)
            canvas.set_labels(None)
            canvas.set_prediction(None)
            canvas.set_slice_range(1)
            self._shown_image = -1
            return
        new_image = image_index != self._shown_image
        if new_image:
            stack = state.stack
            channels = list(getattr(stack, "channel_names", []) or [f"channel {c + 1}" for c in range(stack.shape[1])])
            rgb = stack.shape[1] in (3, 4) and np.dtype(stack.dtype) == np.uint8
            self.view.update(channel=COMPOSITE if rgb else 0)
            self.display.set_channels(channels)
            canvas.set_slice_range(state.n_slices, (getattr(stack, "stack_axes", "") or "Z")[-1])
        canvas.set_slice(slice_index)
        canvas.set_raw(session.slices.raw(), reset_view=new_image)
        canvas.set_labels(state.labels.data[slice_index])
        self._shown_image = image_index
        self.update_prediction()

    def _on_labels_changed(self, image_index: int, slice_index: int, box) -> None:
        if (image_index, slice_index) == (self.session.current_index, self.session.current_slice):
            self.canvas.update_labels(box)

    def _on_probabilities_changed(self, image_index: int, slice_index: int) -> None:
        if (image_index, slice_index) == (self.session.current_index, self.session.current_slice):
            self.update_prediction()

    def update_classes(self) -> None:
        classes = self.session.classes
        colors = [c.rgb() for c in classes]
        self.canvas.set_label_colors(colors)
        self.overlay.set_classes([c.name for c in classes], [c.color for c in classes])
        self.update_prediction()

    # ------------------------------------------------------------------ prediction overlay

    def prediction_image(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The (Y, X) uint8 image and LUT of the prediction overlay for the current state, or (None, None)."""
        probs, view = self.session.slices.probabilities(), self.view
        if probs is None or view.prediction_mode == "off":
            return None, None
        classes = self.session.classes
        thresholds = view.thresholds
        if view.prediction_mode == "argmax":
            values = probabilities_to_labels(probs, list(range(1, len(probs) + 1)),
                                             thresholds if len(thresholds) == len(probs) else ())
            return values, label_lut([c.rgb() for c in classes])
        k = min(view.prediction_class, probs.shape[0] - 1)
        rgb = classes[k].rgb() if k < len(classes) else (255, 255, 0)
        threshold = thresholds[k] if k < len(thresholds) else 0.0
        return probs[k], probability_lut(rgb, threshold)

    def update_prediction(self) -> None:
        image, lut = self.prediction_image()
        self.canvas.set_prediction(image, lut)

    # ------------------------------------------------------------------ status bar

    def _on_cursor(self, y: int, x: int) -> None:
        session = self.session
        if y < 0 or session.current is None:
            self.cursor_text.emit("")
            return
        raw = session.slices.raw()
        values = raw[:, y, x]
        value_text = ", ".join(f"{v:.4g}" if np.issubdtype(values.dtype, np.floating) else str(int(v))
                               for v in values)
        label = session.editing.label_at(y, x)
        classes = session.classes
        class_text = classes[label - 1].name if 0 < label <= len(classes) else "unlabelled"
        text = f"x {x}  y {y}  value {value_text}  label {class_text}"
        probs = session.slices.probabilities()
        if probs is not None:
            k = int(np.argmax(probs[:, y, x]))
            name = classes[k].name if k < len(classes) else f"class {k + 1}"
            text += f"  prediction {name} ({probs[k, y, x] / 255:.2f})"
        self.cursor_text.emit(text)
