"""Saving the session's project: autosave from copies in a writer thread, and a synchronous save.

A mixin of :class:`~unet_studio.gui.session.Session` (kept apart to keep each file readable): a stroke
restarts a ~2 s timer, but never pushes a save later than ~5 s after the first unsaved edit (so someone
painting without a pause is autosaved too, and a crash loses at most those seconds). When the timer
fires, the changed label volumes are copied (milliseconds) and written atomically by a short-lived
thread, so the GUI never waits on the disk. "Save" and closing write on the
GUI thread after the writer has finished. A failed write keeps the labels dirty and says why.
"""

from __future__ import annotations

import json
import threading
import time

from PySide6 import QtCore

from ..core.io import atomic as atomic
from ..core.project import folder as proj
from ..core.errors import UNetStudioError


class SavingMixin:
    """Autosave and save of :class:`Session` (uses its project, images, timer and signals)."""

    AUTOSAVE_DELAY_MS = 2000
    #: The longest an edit waits for its autosave while edits keep coming (what a crash can lose).
    AUTOSAVE_MAX_DELAY_MS = 5000
    _writer: threading.Thread | None = None
    _pending_since: float | None = None  # time.monotonic() of the first edit not yet in a save

    def _schedule_autosave(self) -> None:
        now = time.monotonic()
        if self._pending_since is None:
            self._pending_since = now
        elif self._autosave.isActive():
            # Restarting the timer would postpone the save; stop doing so once a restart would push it
            # past the longest wait.
            waited_ms = (now - self._pending_since) * 1000.0
            if waited_ms + self._autosave.interval() > self.AUTOSAVE_MAX_DELAY_MS:
                return
        self._autosave.start()

    def _emit_dirty(self) -> None:
        dirty = self.is_dirty
        if dirty != self._was_dirty:
            self._was_dirty = dirty
            self.dirty_changed.emit(dirty)

    def _snapshot(self):
        self.about_to_save.emit()  # views put their settings into project.settings (GUI thread)
        folder = self.ensure_folder()
        jobs = [(state, state.labels.version, self.project.labels_path(state.name), state.labels.data.copy())
                for state in self.images if state.dirty]
        return folder, self.project, jobs

    def save_in_background(self) -> None:
        """Write project.json and the changed labels from copies, in a writer thread."""
        if self._writer is not None and self._writer.is_alive():
            self._autosave.start()  # one write at a time: try again shortly
            return
        if not self.is_dirty:
            self._pending_since = None
            return
        try:
            _, project, jobs = self._snapshot()
            text = project.to_dict()
        except UNetStudioError as exc:
            self._report_save_error(str(exc))
            return
        self._project_dirty = False
        self._pending_since = None

        def write() -> None:
            done, error = [], ""
            try:
                _write_project_dict(project, text)
                for state, version, path, data in jobs:
                    proj.save_labels(path, data)
                    done.append((state, version))
            except (UNetStudioError, OSError) as exc:
                error = str(exc)
            self._save_finished.emit(done, error)

        self._writer = threading.Thread(target=write, name="unet-studio-autosave")
        self._writer.start()

    def save_now(self) -> bool:
        """Write everything on this thread (on close, on "Save"); returns False when it failed."""
        self.wait_for_writer()
        self._autosave.stop()
        self._pending_since = None
        try:
            _, project, jobs = self._snapshot()
            proj.save_project(project)
            for state, version, path, data in jobs:
                proj.save_labels(path, data)
                state.saved_version, state.forced_dirty = version, False
        except (UNetStudioError, OSError) as exc:
            self._report_save_error(str(exc))
            return False
        self._project_dirty = False
        self.last_save_error = ""
        self.saved.emit(str(self.project.folder))
        self._emit_dirty()
        return True

    def wait_for_writer(self) -> None:
        if self._writer is not None:
            self._writer.join()
            self._writer = None
            QtCore.QCoreApplication.sendPostedEvents(self)

    def _on_save_finished(self, done, error: str) -> None:
        for state, version in done:
            state.saved_version = version
            state.forced_dirty = False
        if self._writer is not None and not self._writer.is_alive():
            self._writer.join()
            self._writer = None
        if error:
            self._project_dirty = True
            self._report_save_error(error)
        else:
            self.last_save_error = ""
            self.saved.emit(str(self.project.folder))
        self._emit_dirty()

    def _report_save_error(self, message: str) -> None:
        self.last_save_error = message
        self.error.emit("Labels not saved", f"{message}\n\nYour labels are still in memory; "
                        "fix the problem or use File > Save Project As.")




def _write_project_dict(project: proj.Project, data: dict) -> None:
    folder = project._require_folder()
    (folder / proj.LABELS_DIR).mkdir(parents=True, exist_ok=True)
    atomic.write_text(folder / proj.PROJECT_FILE, json.dumps(data, indent=2))
