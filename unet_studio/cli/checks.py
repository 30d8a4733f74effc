"""Checks of the command line's numeric options, and how file names are shown in one-line messages.

argparse only converts (``type=float`` accepts ``nan``, ``inf`` and ``1e999``); these functions say, in one
line naming the option, what range a value must lie in. Each raises :class:`ConfigError`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..core.errors import ConfigError


def check_int(option: str, value: int | None, low: int, high: int) -> int | None:
    """``value`` (``None`` passes) when it lies in ``[low, high]``; :class:`ConfigError` naming ``option`` otherwise."""
    if value is None:
        return None
    if not low <= value <= high:
        raise ConfigError(f"{option} must be a whole number from {low} to {high}, got {value}")
    return value


def check_float(option: str, value: float | None, low: float, high: float, *, low_open: bool = False,
                high_open: bool = False) -> float | None:
    """``value`` (``None`` passes) when finite and in the interval; :class:`ConfigError` naming ``option``."""
    if value is None:
        return None
    inside = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
    if not math.isfinite(value) or not inside:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ConfigError(f"{option} must be a finite number in {interval}, got {value:g}")
    return value


def parse_floats(option: str, text: str | None, low: float, high: float) -> tuple[float, ...]:
    """Comma-separated finite numbers in ``[low, high]`` (``()`` for no text)."""
    if not text:
        return ()
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} must be comma-separated numbers, got {text!r}") from None
    for value in values:
        if not (math.isfinite(value) and low <= value <= high):
            raise ConfigError(f"{option} values must be finite numbers from {low:g} to {high:g}, got {text!r}")
    return values


def parse_ints(option: str, text: str | None, low: int, high: int) -> tuple[int, ...]:
    """Comma-separated whole numbers in ``[low, high]`` (``()`` for no text); ``3.0`` counts as 3."""
    if not text:
        return ()
    try:
        values = parse_floats(option, text, -math.inf, math.inf)
    except ConfigError:
        values = (math.nan,)
    if any(not math.isfinite(v) or v != int(v) or not low <= v <= high for v in values):
        raise ConfigError(f"{option} values must be whole numbers from {low} to {high}, got {text!r}")
    return tuple(int(v) for v in values)


def shown(name: str) -> str:
    """A file name as a one-line message shows it: as it is, or quoted when it holds a line break or
    another control character (which would split the one-line-per-failure format)."""
    return name if name.isprintable() else repr(name)


def shown_list(names: Sequence[str], limit: int = 5) -> str:
    """``a.tif, b.tif and 3 more``."""
    names = [shown(n) for n in names]
    more = len(names) - limit
    return ", ".join(names[:limit]) + (f" and {more} more" if more > 0 else "")


__all__ = ["check_float", "check_int", "parse_floats", "parse_ints", "shown", "shown_list"]
