"""Keeps the canvas in step with the session and the view state.

Session -> canvas: the visible slice (raw image, labels, prediction), changed label boxes (only those
tiles are re-rendered), classes (colour tables). View state -> canvas: channel, contrast, label and
prediction opacity, label visibility, prediction mode, class and thresholds. Canvas -> session: the
slice slider. The text for the status bar (pixel value and class under the cursor) is made here too; it
is made again whenever what is under a still cursor changes (a stroke, another slice, a new prediction).
The contrast histogram is computed here, on a subsample, when the slice or the edited channel changes
(never on a paint); the scale bar follows the image's calibration (:mod:`.calibration`).
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore

from ..core.errors import UNetStudioError
from ..core.predict import probabilities_to_labels
from .calibration import image_calibration, set_pixel_size
from .canvas import ImageCanvas, label_lut, probability_lut
from .composite import channel_colors, is_rgb, plane_histogram
from .objects_layer import ObjectsLayer, describe_object, object_colors, objects_display
from .panels.display_panel import DisplayPanel
from .panels.overlay_panel import OverlayPanel
from .panels.pixel_size import PixelSizeDialog
from .session import Session
from .view_state import COMPOSITE, ViewState

#: Up to this many pixels a slice is re-rendered while the histogram's region is dragged; above, at the end.
LIVE_CONTRAST_PIXELS = 2048 * 2048


class ViewBinder(QtCore.QObject):
    """Wires a session and a view state to a canvas; fills the panels' lists of channels and classes."""

    cursor_text = QtCore.Signal(str)
    objects_counted = QtCore.Signal(int)  # objects on screen; -1 when objects are not shown

    def __init__(self, session: Session, view: ViewState, canvas: ImageCanvas, display: DisplayPanel,
                 overlay: OverlayPanel, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self.session, self.view, self.canvas, self.display, self.overlay = session, view, canvas, display, overlay
        self._shown_image = -1
        self._cursor: tuple[int, int] | None = None
        self.pixel_size_dialog: PixelSizeDialog | None = None
        self.objects = ObjectsLayer(session, self)
        self._objects_shown: tuple[np.ndarray | None, np.ndarray | None] = (None, None)
        self._objects_where: tuple[int, int] | None = None
        self.objects.ready.connect(self._on_objects_ready)

        session.current_changed.connect(self.show_current)
        session.labels_changed.connect(self._on_labels_changed)
        session.classes_changed.connect(self.update_classes)
        session.probabilities_changed.connect(self._on_probabilities_changed)
        canvas.slice_requested.connect(session.set_current_slice)
        canvas.cursor_moved.connect(self._on_cursor)
        display.pixel_size_requested.connect(self.set_pixel_size)
        for name in ViewState.FIELDS:
            self._on_view_changed(name, None)
        view.connect(self._on_view_changed)
        self.update_classes()

    def _on_view_changed(self, name: str, _value) -> None:
        view, canvas = self.view, self.canvas
        if name == "channel":
            canvas.set_channel(view.channel)
            self.update_histogram()
        elif name == "contrast_channel":
            self.update_histogram()
        elif name in ("contrast", "levels"):
            if name == "contrast":
                canvas.set_percentiles(*view.contrast)
            else:
                canvas.set_levels(view.levels)
            c = view.edited_channel
            if 0 <= c < len(canvas.channel_levels):
                self.display.histogram.set_levels(canvas.channel_levels[c])
        elif name == "scale_bar":
            canvas.scale_bar.set_enabled(view.scale_bar)
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
            self.update_calibration()
            self._show_cursor()
            return
        new_image = image_index != self._shown_image
        if new_image:
            stack = state.stack
            channels = list(getattr(stack, "channel_names", []) or [f"channel {c + 1}" for c in range(stack.shape[1])])
            rgb = is_rgb(stack.shape[1], stack.dtype)
            # Levels of another image mean nothing here (another dtype, another range): automatic again.
            self.view.update(channel=COMPOSITE if rgb else 0, contrast_channel=0, levels=())
            self.display.set_channels(channels)
            canvas.set_slice_range(state.n_slices, (getattr(stack, "stack_axes", "") or "Z")[-1])
        canvas.set_slice(slice_index)
        canvas.set_raw(session.slices.raw(), reset_view=new_image)
        painted = getattr(state.labels, "painted_boxes", None)  # a big image's: only its painted chunks are read
        canvas.set_labels(state.labels.data[slice_index], painted and (lambda: painted(slice_index)))
        self._shown_image = image_index
        if new_image:
            self.update_calibration()
        self.update_histogram()
        self.update_prediction()
        self._show_cursor()

    def _on_labels_changed(self, image_index: int, slice_index: int, box) -> None:
        if (image_index, slice_index) == (self.session.current_index, self.session.current_slice):
            self.canvas.update_labels(box)
            self._show_cursor()

    def _on_probabilities_changed(self, image_index: int, slice_index: int) -> None:
        if (image_index, slice_index) == (self.session.current_index, self.session.current_slice):
            self.update_prediction()
            self._show_cursor()

    def update_classes(self) -> None:
        classes = self.session.classes
        colors = [c.rgb() for c in classes]
        self.canvas.set_label_colors(colors)
        self.overlay.set_classes([c.name for c in classes], [c.color for c in classes])
        self.update_prediction()
        self._show_cursor()  # a renamed class under a still cursor

    # ------------------------------------------------------------------ prediction overlay

    def prediction_image(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The (Y, X) uint8 image and LUT of the prediction overlay for the current state, or (None, None)."""
        probs, view = self.session.slices.probabilities(), self.view
        if probs is None or view.prediction_mode == "off":
            return None, None
        classes = self.session.classes
        thresholds = view.thresholds
        if view.prediction_mode == "objects":
            return self._objects_image(probs)
        if view.prediction_mode == "argmax":
            values = probabilities_to_labels(probs, list(range(1, len(probs) + 1)),
                                             thresholds if len(thresholds) == len(probs) else ())
            return values, label_lut([c.rgb() for c in classes])
        k = min(view.prediction_class, probs.shape[0] - 1)
        rgb = classes[k].rgb() if k < len(classes) else (255, 255, 0)
        threshold = thresholds[k] if k < len(thresholds) else 0.0
        return probs[k], probability_lut(rgb, threshold)

    def _objects_image(self, probs: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The objects overlay when the objects of ``probs`` are made, else the previous one (a request runs)."""
        session, thresholds = self.session, self._display_thresholds(probs)
        found = self.objects.result(session.current_index, session.current_slice, probs, thresholds)
        if found is None:
            self.objects.request(session.current_index, session.current_slice, probs, thresholds)
            # Until they are made, the objects of an earlier prediction of this slice stay (no flicker
            # during live previews); those of another slice never show here.
            return self._objects_shown if self._objects_where == (session.current_index, session.current_slice) \
                else (None, None)
        self._objects_where = (session.current_index, session.current_slice)
        self._objects_shown = (objects_display(found.objects), object_colors())
        self.objects_counted.emit(found.count)
        return self._objects_shown

    def _display_thresholds(self, probs: np.ndarray) -> tuple:
        thresholds = self.view.thresholds
        return tuple(thresholds) if len(thresholds) == len(probs) else ()

    def _on_objects_ready(self, image_index: int, slice_index: int) -> None:
        if self.view.prediction_mode == "objects" and \
                (image_index, slice_index) == (self.session.current_index, self.session.current_slice):
            self.update_prediction()
            self._show_cursor()

    def objects_shown(self):
        """The :class:`~.objects_layer.SliceObjects` on screen now, or None."""
        session = self.session
        if self.view.prediction_mode != "objects":
            return None
        probs = session.slices.probabilities()
        if probs is None:
            return None
        return self.objects.result(session.current_index, session.current_slice, probs,
                                   self._display_thresholds(probs))

    def object_text_at(self, y: int, x: int) -> str:
        """The measurements of the object shown at pixel (y, x), or "" (no objects shown there)."""
        shown = self.objects_shown()
        if shown is None or not (0 <= y < shown.objects.shape[0] and 0 <= x < shown.objects.shape[1]):
            return ""
        label = int(shown.objects[y, x])
        row = shown.row(label) if label else None
        return describe_object(row, shown.count) if row else ""

    def update_prediction(self) -> None:
        image, lut = self.prediction_image()
        self.canvas.set_prediction(image, lut)
        if self.view.prediction_mode != "objects" or image is None:
            self._objects_shown = (None, None)
            self.objects_counted.emit(-1)

    # ------------------------------------------------------------------ status bar

    def _on_cursor(self, y: int, x: int) -> None:
        self._cursor = (y, x) if y >= 0 else None
        self._show_cursor()

    def _show_cursor(self) -> None:
        """The status bar's text for the pixel under the cursor, from the data shown now."""
        session = self.session
        if self._cursor is None or session.current is None:
            self.cursor_text.emit("")
            return
        y, x = self._cursor
        raw = session.slices.raw()
        if not (y < raw.shape[1] and x < raw.shape[2]):  # another, smaller image under a still cursor
            self.cursor_text.emit("")
            return
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
            shown = self.objects_shown()
            if shown is not None and shown.objects[y, x] > 0:
                label = int(shown.objects[y, x])
                row = shown.row(label) or {}
                text += f"  object {label} of {shown.count} ({int(row.get('area_px', 0))} px)"
        self.cursor_text.emit(text)

    # ------------------------------------------------------------------ contrast histogram

    def update_histogram(self) -> None:
        """Show the histogram of the edited channel of the visible slice (a subsample: fast on big images)."""
        session, canvas = self.session, self.canvas
        if session.current is None or not canvas.channel_levels:
            return
        raw = session.slices.raw()
        raw = getattr(raw, "overview", raw)  # a big image: the histogram of its overview
        c = min(self.view.edited_channel, raw.shape[0] - 1)
        if c >= len(canvas.channel_levels):  # the canvas still shows the previous image
            return
        self.display.histogram.live = raw.shape[1] * raw.shape[2] <= LIVE_CONTRAST_PIXELS
        centers, counts = plane_histogram(raw[c])
        # The colour the channel is shown in: its own in a composite, grey when shown alone.
        color = channel_colors(raw.shape[0], raw.dtype)[c] if self.view.channel == COMPOSITE else (1, 1, 1)
        self.display.show_histogram(centers, counts, canvas.channel_levels[c],
                                    tuple(int(v * 255) for v in color))

    # ------------------------------------------------------------------ pixel size

    def update_calibration(self) -> None:
        """Show the current image's pixel size in the panel and as the scale bar."""
        pixel_size, unit, from_file = image_calibration(self.session.current)
        self.canvas.scale_bar.set_calibration(pixel_size[1] if pixel_size else None, unit)
        self.display.show_calibration(pixel_size[1] if pixel_size else None, unit, from_file)

    def set_pixel_size(self, size: float, unit: str) -> None:
        """Set the current image's pixel size (0 clears it); a refusal reaches the person as a message."""
        try:
            if not set_pixel_size(self.session, size, unit):
                return  # e.g. a unit chosen before the value: the editor keeps showing the choice
        except UNetStudioError as exc:
            self.session.error.emit("Cannot set the pixel size", str(exc))
        self.update_calibration()

    def ask_pixel_size(self, parent=None) -> None:
        """Image > Set Pixel Size...: a dialog (not blocking) for the current image's pixel size."""
        state = self.session.current
        if state is None:
            raise UNetStudioError("open an image first, then set its pixel size")
        pixel_size, unit, from_file = image_calibration(state)
        if from_file:
            raise UNetStudioError(f"{state.name} has its pixel size in its file ({pixel_size[1]:g} {unit}); "
                                  "change it there (e.g. Fiji's Image > Properties)")
        dialog = PixelSizeDialog(pixel_size[1] if pixel_size else None, unit, state.name, parent)
        dialog.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.chosen.connect(self.set_pixel_size)
        self.pixel_size_dialog = dialog
        dialog.open()
