"""The one schema of ``project.json``'s values: what each key may hold, checked when the file is read.

``project.json`` is a text file anybody can edit or send. A value of the wrong type or outside its range
(a colour ``"#zz"``, ``"epochs": 1e20``, ``"brush_size": "big"``) is dropped, so that the application
uses its default, and named in a notice the person is shown; it never reaches the widgets. Keys this
version does not know are kept as they are (a newer version may use them).
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable

#: A check returns the cleaned value, or raises ValueError with what the value should be.
Check = Callable[[Any], Any]

COLOR = re.compile(r"#[0-9a-fA-F]{6}")
MAX_CLASSES = 65535  # label values are stored as uint16 at most


def _number(low: float, high: float) -> Check:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not low <= value <= high:
            raise ValueError(f"a number from {low:g} to {high:g}")
        return float(value)
    return check


def _integer(low: int, high: int) -> Check:
    def check(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value != int(value) or not low <= value <= high:
            raise ValueError(f"a whole number from {low} to {high}")
        return int(value)
    return check


def _boolean(value):
    if not isinstance(value, bool):
        raise ValueError("true or false")
    return value


def _text(value):
    if not isinstance(value, str) or len(value) > 200 or "\0" in value:
        raise ValueError("a short text")
    return value


def _optional(check: Check) -> Check:
    def optional(value):
        return None if value is None else check(value)
    return optional


def _list_of(check: Check, max_length: int) -> Check:
    def checked(value):
        if not isinstance(value, list) or len(value) > max_length:
            raise ValueError(f"a list of at most {max_length} values")
        return [check(item) for item in value]
    return checked


def _percentiles(value):
    low, high = _list_of(_number(0.0, 100.0), 2)(value) if isinstance(value, list) and len(value) == 2 else (0, 0)
    if not low < high:
        raise ValueError("two percentiles [low, high] with 0 <= low < high <= 100")
    return [low, high]


#: Every setting the application reads, by section; a dict value is a section of its own.
SETTINGS: dict[str, Any] = {
    "training": {
        "preset": _text,
        "time_limit_s": _optional(_number(0.0, 7 * 24 * 3600.0)),
        "epochs": _integer(1, 100_000),
        "continue_training": _boolean,
        "starting_model": _text,
    },
    "overlay": {
        "labels_visible": _boolean,
        "label_opacity": _number(0.0, 1.0),
        "prediction_mode": _text,
        "prediction_class": _integer(0, MAX_CLASSES),
        "prediction_opacity": _number(0.0, 1.0),
        "thresholds": _list_of(_number(0.0, 1.0), MAX_CLASSES),
    },
    "big_images": {
        "dask_scheduler": _text,
    },
    "brush_size": _integer(1, 400),
    "contrast_percentiles": _percentiles,
}


def clean_settings(settings: Any, schema: dict[str, Any] = SETTINGS, where: str = "settings") -> tuple[dict, list[str]]:
    """``settings`` without the values that break ``schema``, and one notice per value dropped.

    Parameters
    ----------
    settings : object
        The ``settings`` value of ``project.json`` (anything JSON holds).
    schema : dict
        Key -> check, or key -> dict (a section: a dict of its own keys).
    where : str
        Dotted name of ``settings`` for the notices.

    Returns
    -------
    dict, list of str
        The cleaned settings and what was ignored (empty when everything was fine).
    """
    if not isinstance(settings, dict):
        return {}, [f"{where}: {_shown(settings)} is not a group of settings (ignored)"]
    cleaned, notices = {}, []
    for key, value in settings.items():
        rule = schema.get(key)
        name = f"{where}.{key}"
        if rule is None:
            cleaned[key] = value  # a key of a newer version: kept, unused
        elif isinstance(rule, dict):
            cleaned[key], more = clean_settings(value, rule, name)
            notices += more
        else:
            try:
                cleaned[key] = rule(value)
            except (ValueError, TypeError, OverflowError) as exc:
                notices.append(f"{name}: {_shown(value)} is not {exc} (ignored)")
    return cleaned, notices


def clean_classes(classes: Any, default_colors) -> tuple[list[tuple[str, str]], list[str]]:
    """``(name, colour)`` of each class of ``project.json``'s ``classes``, and what was replaced.

    A bad colour gets a default colour and a bad name "class N", so that label values keep their
    meaning (class k is the k-th entry); a list that is not a list of classes gives no classes at all.
    """
    if not isinstance(classes, list) or len(classes) > MAX_CLASSES:
        return [], [f"classes: {_shown(classes)} is not a list of at most {MAX_CLASSES} classes (the default "
                    "classes are used)"]
    cleaned, notices = [], []
    for k, item in enumerate(classes):
        item = item if isinstance(item, dict) else {}
        name, color = item.get("name"), item.get("color")
        if not isinstance(name, str) or not name or len(name) > 200 or "\0" in name:
            notices.append(f"classes[{k}].name: {_shown(name)} is not a class name (ignored)")
            name = f"class {k + 1}"
        if not isinstance(color, str) or not COLOR.fullmatch(color):
            notices.append(f"classes[{k}].color: {_shown(color)} is not a colour #rrggbb (ignored)")
            color = default_colors[k % len(default_colors)]
        cleaned.append((name, color))
    return cleaned, notices


#: Units a pixel size may be given in (as :func:`~unet_studio.core.io.normalize_unit` spells them).
PIXEL_UNITS = ("nm", "µm", "mm", "cm", "m")


def clean_pixel_size(size: Any, unit: Any) -> tuple[tuple[float, float], str]:
    """A pixel size ``(y, x)`` and its unit from ``project.json`` (or a person), checked.

    ``size`` is one positive number (square pixels) or ``[y, x]``; ``unit`` one of :data:`PIXEL_UNITS`
    (every spelling of micron is accepted). Raises ValueError saying what a pixel size should be.
    """
    from ..io import normalize_unit

    values = [size] if isinstance(size, (int, float)) else size
    if not isinstance(values, (list, tuple)) or len(values) not in (1, 2):
        raise ValueError("a pixel size is one number or [y, x]")
    check = _number(1e-12, 1e9)
    try:
        numbers = [check(v) for v in values]
    except ValueError:
        raise ValueError("a pixel size must be a positive number") from None
    spelled = normalize_unit(unit) if isinstance(unit, str) else None
    if spelled not in PIXEL_UNITS:
        raise ValueError(f"the unit of a pixel size is one of {', '.join(PIXEL_UNITS)}")
    return (numbers[0], numbers[-1]), spelled


def _shown(value: Any) -> str:
    """A value as the notice shows it: short, on one line, control characters escaped."""
    try:
        text = repr(value) if isinstance(value, str) else str(value)
    except (RecursionError, ValueError):  # deeply nested, or an int too long to print
        text = type(value).__name__
    text = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return text if len(text) <= 40 else text[:37] + "..."
