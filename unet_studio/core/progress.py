"""Progress text shared by the front ends (the CLI's progress bars, the GUI's training panel); Qt-free."""

from __future__ import annotations

import math

UNKNOWN_DURATION = "-:--"


def format_duration(seconds: float | None) -> str:
    """A duration as ``m:ss``, or ``h:mm:ss`` from an hour on.

    Parameters
    ----------
    seconds : float or None
        The duration; ``None``, NaN, infinite or negative values mean "not known yet".

    Returns
    -------
    str
        E.g. ``"1:05"``, ``"1:02:05"``; :data:`UNKNOWN_DURATION` (``"-:--"``) when unknown.
    """
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return UNKNOWN_DURATION
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


__all__ = ["UNKNOWN_DURATION", "format_duration"]
