"""What of the session is unsaved, and getting it saved: autosave in the background, "Save" on this thread.

:class:`Saving` tracks whether the project (image list, classes, settings) changed since its last save,
owns the session's :class:`~.autosaver.AutoSaver` (timer and writer thread), and writes synchronously on
"Save" and on close. It tells the views through the session's signals (``about_to_save``, ``saved``,
``dirty_changed``, ``error``); failures keep the labels in memory and marked unsaved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import UNetStudioError
from .autosaver import AutoSaver
from .project_files import SaveJob, write_job

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Saving"]


class Saving:
    """The session's unsaved state and its saves.

    Parameters
    ----------
    session : Session
        Whose images and project are saved (the session is also the autosaver's Qt parent).
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.project_dirty = False  # the image list, classes or settings changed since the last save
        self.last_save_error = ""
        self._was_dirty = False
        self.autosaver = AutoSaver(self._take_snapshot, write_job, session)
        self.autosaver.finished.connect(self._on_save_finished)

    # ------------------------------------------------------------------ unsaved state

    @property
    def is_dirty(self) -> bool:
        """Anything unsaved: the project itself or the labels of an image."""
        return self.project_dirty or any(state.dirty for state in self.session.images)

    def project_edited(self) -> None:
        """The image list, the classes or the settings changed: mark the project unsaved, autosave soon."""
        self.project_dirty = True
        self.schedule()

    def schedule(self) -> None:
        """An edit happened: autosave a couple of seconds after the last one."""
        self.autosaver.schedule()

    def is_scheduled(self) -> bool:
        return self.autosaver.is_scheduled()

    def update_dirty(self) -> None:
        """Emit ``dirty_changed`` when the unsaved state flipped since it was last emitted."""
        dirty = self.is_dirty
        if dirty != self._was_dirty:
            self._was_dirty = dirty
            self.session.dirty_changed.emit(dirty)

    def forget_unsaved(self) -> None:
        """Mark everything saved without writing (the person discarded the project)."""
        for state in self.session.images:
            state.saved_version, state.forced_dirty = state.labels.version, False
        self.project_dirty = False

    # ------------------------------------------------------------------ saves

    def save_in_background(self) -> None:
        """Write project.json and the changed labels from copies, in a writer thread."""
        self.autosaver.save_in_background()

    def wait(self) -> None:
        """Finish a background write (its result is handled before this returns)."""
        self.autosaver.wait()

    def stop(self) -> None:
        """Stop the autosave timer (on close)."""
        self.autosaver.stop()

    def save_now(self) -> bool:
        """Write everything on this thread (on close, on "Save"); returns False when it failed (reported)."""
        self.wait()
        self.autosaver.stop()
        try:
            job = self._snapshot()
        except UNetStudioError as exc:
            self._report_error(str(exc))
            return False
        done, error = write_job(job)
        _mark_saved(done)
        if error:
            self._report_error(error)
            return False
        self.project_dirty = False
        self.last_save_error = ""
        self.session.saved.emit(str(self.session.project.folder))
        self.update_dirty()
        return True

    def _snapshot(self) -> SaveJob:
        """Copies of what to write (GUI thread); creates the untitled folder when there is none yet."""
        session = self.session
        session.about_to_save.emit()  # views put their settings into project.settings
        had_folder = session.project.folder is not None
        job = session.files.snapshot(session.images)
        if not had_folder:
            session.project_changed.emit()
        return job

    def _take_snapshot(self) -> SaveJob | None:
        """The autosaver's job: None when nothing changed (GUI thread; the writer gets copies)."""
        if not self.is_dirty:
            return None
        job = self._snapshot()
        self.project_dirty = False
        return job

    def _on_save_finished(self, done, error: str) -> None:
        _mark_saved(done)
        if error:
            self.project_dirty = True
            self._report_error(error)
        else:
            self.last_save_error = ""
            self.session.saved.emit(str(self.session.project.folder))
        self.update_dirty()

    def _report_error(self, message: str) -> None:
        self.last_save_error = message
        self.session.error.emit("Labels not saved", f"{message}\n\nYour labels are still in memory; "
                                "fix the problem or use File > Save Project As.")


def _mark_saved(done) -> None:
    """Record the labels versions a write put on disk (what is newer stays unsaved)."""
    for state, version in done:
        state.saved_version = version
        state.forced_dirty = False
