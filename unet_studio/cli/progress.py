"""A small progress bar for the command line (stderr), with no dependency.

On a terminal it redraws one line; elsewhere (CI logs, pipes) it prints a line every few seconds. Durations
are written by :func:`unet_studio.core.progress.format_duration`, as the application writes them.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """``bar.update(done, total, text)`` redraws; ``bar.close()`` ends the line."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 28, interval_s: float = 5.0) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.interval_s = interval_s
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last = 0.0
        self._line = ""
        self._printed = ""

    def update(self, done: float, total: float | None, text: str = "", force: bool = False) -> None:
        fraction = min(1.0, done / total) if total else 0.0
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        count = f"{int(done)}/{int(total)}" if total else f"{int(done)}"
        self._line = f"{self.label} [{bar}] {count} {text}".rstrip()
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\033[K" + self._line)
            self.stream.flush()
        elif force or now - self._last >= self.interval_s:
            self.stream.write(self._line + "\n")
            self.stream.flush()
            self._last = now
            self._printed = self._line

    def message(self, text: str) -> None:
        """Print a line above the bar."""
        if self.tty:
            self.stream.write("\r\033[K" + text + "\n" + self._line)
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
        elif self._line and self._line != self._printed:
            self.stream.write(self._line + "\n")
        self.stream.flush()


__all__ = ["ProgressBar"]
