"""How things are shown, as a plain Python model: the panels mirror it and write to it, the canvas follows it.

:class:`ViewState` holds the display choices that are not data (label and prediction opacity, label
visibility, prediction mode, class and per-class thresholds, channel, contrast percentiles, per-channel
display levels, the channel whose contrast is edited, the scale bar). It imports no
Qt, so it is tested without a display. Every change goes through :meth:`ViewState.update`, which
normalises the values and calls each listener with the name and new value of each field that changed:
a panel that listens updates its widgets with their signals blocked, so nothing echoes back (the pattern
of napari's layer controls).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: Prediction display modes, in the order the panel offers them. "argmax" shows the predicted class
#: of each pixel (the menu says "Labels"); the key stays "argmax" so saved projects keep working.
#: "objects" shows each object of the prediction in its own colour, outlined (see gui/objects_layer.py).
PREDICTION_MODES = ("off", "probability", "argmax", "objects")
DEFAULT_THRESHOLD = 0.5
DEFAULT_CONTRAST = (1.0, 99.8)
COMPOSITE = -1   # the channel value of a composite of every channel

Listener = Callable[[str, Any], None]


def _fraction(value) -> float:
    return min(max(float(value), 0.0), 1.0)


def _levels(value) -> tuple[float, float]:
    low, high = (float(v) for v in value)
    if not high > low:
        raise ValueError(f"display levels must satisfy low < high, got {low}, {high}")
    return low, high


class ViewState:
    """Display state shared by the panels, the canvas binder and the window (no Qt).

    Attributes are read-only properties; change them with :meth:`update` (or the helpers built on it),
    which notifies listeners registered with :meth:`connect` once per changed field.
    """

    FIELDS = ("labels_visible", "label_opacity", "prediction_mode", "prediction_class",
              "prediction_opacity", "thresholds", "channel", "contrast", "levels", "contrast_channel",
              "scale_bar")

    def __init__(self) -> None:
        self._values: dict[str, Any] = {
            "labels_visible": True, "label_opacity": 0.5, "prediction_mode": "probability",
            "prediction_class": 0, "prediction_opacity": 0.5, "thresholds": (), "channel": 0,
            "contrast": DEFAULT_CONTRAST, "levels": (), "contrast_channel": 0, "scale_bar": True,
        }
        self._listeners: list[Listener] = []

    # ------------------------------------------------------------------ observers

    def connect(self, listener: Listener) -> None:
        """Call ``listener(name, value)`` after each change of a field."""
        self._listeners.append(listener)

    def disconnect(self, listener: Listener) -> None:
        self._listeners.remove(listener)

    # ------------------------------------------------------------------ values

    labels_visible = property(lambda self: self._values["labels_visible"])
    label_opacity = property(lambda self: self._values["label_opacity"])
    prediction_mode = property(lambda self: self._values["prediction_mode"])
    prediction_class = property(lambda self: self._values["prediction_class"])
    prediction_opacity = property(lambda self: self._values["prediction_opacity"])
    thresholds = property(lambda self: self._values["thresholds"], doc="Per-class thresholds (a tuple).")
    channel = property(lambda self: self._values["channel"])
    contrast = property(lambda self: self._values["contrast"], doc="(low, high) percentiles.")
    levels = property(lambda self: self._values["levels"],
                      doc="Per-channel display levels (low, high), or None where automatic (from ``contrast``).")
    contrast_channel = property(lambda self: self._values["contrast_channel"],
                                doc="The channel whose contrast the histogram edits in a composite.")
    scale_bar = property(lambda self: self._values["scale_bar"], doc="Show the scale bar on calibrated images.")

    @property
    def edited_channel(self) -> int:
        """The channel whose contrast the histogram shows: the one shown, or in a composite the one chosen."""
        channel = self._values["channel"]
        return self._values["contrast_channel"] if channel == COMPOSITE else channel

    def channel_levels(self, channel: int) -> tuple[float, float] | None:
        """The levels the person set for ``channel``, or None (automatic)."""
        levels = self._values["levels"]
        return levels[channel] if 0 <= channel < len(levels) else None

    def set_channel_levels(self, channel: int, levels: tuple[float, float] | None) -> None:
        """Set (or, with None, make automatic again) the display levels of ``channel``."""
        current = list(self._values["levels"])
        current += [None] * (channel + 1 - len(current))
        current[channel] = levels
        while current and current[-1] is None:
            current.pop()
        self.update(levels=current)

    def threshold(self, k: int) -> float:
        """The threshold of class index ``k`` (the default for a class it does not know)."""
        thresholds = self._values["thresholds"]
        return thresholds[k] if 0 <= k < len(thresholds) else DEFAULT_THRESHOLD

    def update(self, **changes) -> list[str]:
        """Set fields (names of :attr:`FIELDS`), notify listeners of those that changed, return their names.

        Raises
        ------
        KeyError
            For an unknown field name.
        ValueError
            For an unknown prediction mode or contrast percentiles that are not ``0 <= low < high <= 100``.
        """
        normalised = {name: self._normalise(name, value) for name, value in changes.items()}
        changed = [name for name, value in normalised.items() if self._values[name] != value]
        for name in changed:
            self._values[name] = normalised[name]
        for name in changed:
            for listener in list(self._listeners):
                listener(name, self._values[name])
        return changed

    def _normalise(self, name: str, value):
        if name not in self._values:
            raise KeyError(f"unknown view setting {name!r}")
        if name in ("label_opacity", "prediction_opacity"):
            return _fraction(value)
        if name in ("labels_visible", "scale_bar"):
            return bool(value)
        if name == "levels":
            return tuple(None if item is None else _levels(item) for item in value)
        if name == "prediction_mode":
            if value not in PREDICTION_MODES:
                raise ValueError(f"unknown prediction mode {value!r}: one of {', '.join(PREDICTION_MODES)}")
            return value
        if name == "thresholds":
            return tuple(_fraction(t) for t in value)
        if name == "contrast":
            low, high = (float(v) for v in value)
            if not 0.0 <= low < high <= 100.0:
                raise ValueError(f"contrast percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
            return low, high
        if name in ("prediction_class", "contrast_channel"):
            return max(int(value), 0)
        return int(value)

    def set_threshold(self, k: int, threshold: float) -> None:
        """Set the threshold of class index ``k`` (ignored for a class the state does not know)."""
        thresholds = list(self._values["thresholds"])
        if 0 <= k < len(thresholds):
            thresholds[k] = threshold
            self.update(thresholds=thresholds)

    def set_class_count(self, n_classes: int) -> None:
        """Follow the project's classes: keep the thresholds of those that remain, new ones start at 0.5.

        The first time there are classes, the last one (the objects, e.g. "foreground") becomes the
        class whose probability is shown; later the shown class only moves when it no longer exists.
        """
        old = self._values["thresholds"]
        thresholds = (tuple(old) + (DEFAULT_THRESHOLD,) * n_classes)[:n_classes]
        k = self._values["prediction_class"]
        if not old and n_classes > 1:
            k = n_classes - 1
        self.update(thresholds=thresholds, prediction_class=min(k, max(n_classes - 1, 0)))

    # ------------------------------------------------------------------ project settings

    def to_settings(self) -> dict:
        """The state as JSON-able project settings (the project's "overlay" and "contrast_percentiles")."""
        values = self._values
        overlay = {name: values[name] for name in ("labels_visible", "label_opacity", "prediction_mode",
                                                   "prediction_class", "prediction_opacity")}
        overlay["thresholds"] = list(values["thresholds"])
        return {"overlay": overlay, "contrast_percentiles": list(values["contrast"])}

    def apply_settings(self, settings: dict) -> None:
        """Show a project's settings (as written by :meth:`to_settings`); bad or missing values are skipped."""
        overlay = settings.get("overlay")
        changes: dict[str, Any] = {}
        if isinstance(overlay, dict):
            changes.update({k: v for k, v in overlay.items() if k in self.FIELDS and k != "thresholds"})
            given = overlay.get("thresholds")
            if isinstance(given, Sequence):
                known = list(self._values["thresholds"])
                changes["thresholds"] = [*given[: len(known)], *known[len(given):]]
        if "contrast_percentiles" in settings:
            changes["contrast"] = settings["contrast_percentiles"]
        if "prediction_class" in changes:
            count = len(changes.get("thresholds", self._values["thresholds"]))
            if not 0 <= int(changes["prediction_class"]) < max(count, 1):
                del changes["prediction_class"]
        for name, value in changes.items():
            try:
                self.update(**{name: value})
            except (TypeError, ValueError):
                continue  # a hand-edited project file: keep the current value of this one
