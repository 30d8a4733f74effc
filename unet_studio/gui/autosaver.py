"""Autosave: a timer that follows the edits and a writer thread that saves copies, so the GUI never waits.

A stroke restarts a ~2 s timer, but never pushes a save later than ~5 s after the first unsaved edit (so
someone painting without a pause is autosaved too, and a crash loses at most those seconds). When the
timer fires, the :class:`AutoSaver` asks its ``take_snapshot`` callable for a
:class:`~unet_studio.gui.project_files.SaveJob` (copies, made on the GUI thread in milliseconds) and
writes it with ``write`` in a short-lived thread; ``finished`` brings the result back to the GUI thread.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from PySide6 import QtCore

from ..core.errors import UNetStudioError


class AutoSaver(QtCore.QObject):
    """The autosave timer and writer thread of a session.

    Parameters
    ----------
    take_snapshot : callable
        ``() -> job or None`` on the GUI thread: what to write, or None when nothing changed. May raise
        UNetStudioError (reported through ``finished``).
    write : callable
        ``(job) -> (done, error)`` on the writer thread; must not raise (see ``project_files.write_job``).
    """

    finished = QtCore.Signal(object, str)   # done (what ``write`` returned), error message ("" on success)
    _written = QtCore.Signal()              # from the writer thread (queued to this object's thread)

    DELAY_MS = 2000
    #: The longest an edit waits for its autosave while edits keep coming (what a crash can lose).
    MAX_DELAY_MS = 5000

    def __init__(self, take_snapshot: Callable, write: Callable, parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._take_snapshot, self._write = take_snapshot, write
        self.max_delay_ms = self.MAX_DELAY_MS
        self.timer = QtCore.QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(self.DELAY_MS)
        self.timer.timeout.connect(self.save_in_background)
        self._written.connect(self._deliver)
        self._writer: threading.Thread | None = None
        self._pending_since: float | None = None  # time.monotonic() of the first edit not yet in a save
        self._result: tuple | None = None

    def set_delays(self, delay_ms: int, max_delay_ms: int | None = None) -> None:
        """Autosave ``delay_ms`` after the last edit, at most ``max_delay_ms`` after the first unsaved one."""
        self.timer.setInterval(int(delay_ms))
        if max_delay_ms is not None:
            self.max_delay_ms = int(max_delay_ms)

    def schedule(self) -> None:
        """An edit happened: (re)start the timer, unless that would push the save past the longest wait."""
        now = time.monotonic()
        if self._pending_since is None:
            self._pending_since = now
        elif self.timer.isActive():
            waited_ms = (now - self._pending_since) * 1000.0
            if waited_ms + self.timer.interval() > self.max_delay_ms:
                return
        self.timer.start()

    def is_scheduled(self) -> bool:
        return self.timer.isActive()

    def save_in_background(self) -> None:
        """Take a snapshot now and write it in a writer thread (one write at a time)."""
        if self._writer is not None and self._writer.is_alive():
            self.timer.start()  # try again shortly
            return
        try:
            job = self._take_snapshot()
        except UNetStudioError as exc:
            self.finished.emit([], str(exc))
            return
        self._pending_since = None
        if job is None:
            return

        def write() -> None:
            self._result = self._write(job)
            self._written.emit()

        self._result = None
        self._writer = threading.Thread(target=write, name="unet-studio-autosave")
        self._writer.start()

    def _deliver(self) -> None:
        if self._writer is not None:  # else wait() delivered it already
            self._finish()

    def _finish(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.join()
        result, self._result = self._result, None
        if result is not None:
            self.finished.emit(*result)

    def stop(self) -> None:
        """Stop the timer and forget pending edits (a synchronous save follows, or nothing is to be saved)."""
        self.timer.stop()
        self._pending_since = None

    def wait(self) -> None:
        """Finish a background write and deliver its result (``finished``) before returning."""
        if self._writer is not None:
            self._writer.join()
            self._finish()
