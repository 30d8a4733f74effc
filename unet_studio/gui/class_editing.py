"""The project's classes, edited: add, rename, recolour and delete, keeping every image's labels consistent.

The classes panel calls :class:`ClassEditing`; it changes ``project.classes`` (and, for a deleted class,
the labels and predictions of every image) and tells the views through the session's ``classes_changed``
(and ``labels_changed``/``probabilities_changed`` when pixels changed).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core import project as proj
from ..core.errors import UNetStudioError

if TYPE_CHECKING:
    from .session import Session

__all__ = ["BOUNDARY_COLOR", "ClassEditing"]

#: Colour of a new boundary class: white lines between coloured objects.
BOUNDARY_COLOR = "#ffffff"


class ClassEditing:
    """Edits the session's classes (class ``index`` is painted as value ``index + 1``).

    Parameters
    ----------
    session : Session
        Whose project's classes are edited and whose signals announce the change.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, name: str | None = None, color: str | None = None) -> int:
        """Add a class (a default name and an unused colour when not given), make it active; its index."""
        classes = self.session.classes
        if len(classes) >= proj.MAX_CLASSES:
            raise UNetStudioError(f"a project holds at most {proj.MAX_CLASSES} classes")
        color = color or proj.next_color([c.color for c in classes])
        classes.append(proj.ClassInfo(name or f"class {len(classes) + 1}", color))
        for state in self.session.images:  # class 256 needs uint16 labels: widen, never wrap
            state.labels.widen(len(classes))
        self._edited()
        self.session.set_active_class(len(classes) - 1)
        return len(classes) - 1

    def add_boundary(self) -> int:
        """Add the boundary class (painted between touching objects: trained as background with the paper's
        high border weight, so that the network learns to cut them apart), make it active; its index.

        A project has one boundary class: when it exists, it is made active instead.
        """
        classes = self.session.classes
        existing = next((k for k, c in enumerate(classes) if c.boundary), None)
        if existing is not None:
            self.session.set_active_class(existing)
            return existing
        names = {c.name.casefold() for c in classes}
        name = "boundary" if "boundary" not in names else "boundary (objects)"
        index = self.add(name, BOUNDARY_COLOR if BOUNDARY_COLOR not in {c.color for c in classes} else None)
        classes[index].boundary = True
        self._edited()
        return index

    def rename(self, index: int, name: str) -> None:
        """Rename class ``index`` (an empty name is ignored)."""
        info = self.session.classes[index]
        if name and info.name != name:
            info.name = name
            self._edited()

    def recolor(self, index: int, color: str) -> None:
        """Give class ``index`` the colour ``color`` ("#rrggbb")."""
        info = self.session.classes[index]
        if info.color != color:
            info.color = color
            self._edited()

    def remove(self, index: int) -> None:
        """Delete a class: its pixels become unlabelled, higher classes move down (undo history is cleared)."""
        session = self.session
        if len(session.classes) <= 1:
            raise UNetStudioError("a project needs at least one class")
        value = index + 1
        for state in session.images:
            if hasattr(state.labels, "remove_class"):  # a big image's labels: only their painted chunks
                state.labels.remove_class(value)
                state.probabilities.clear()
                continue
            data = state.labels.data
            if (data >= value).any():
                data[data == value] = 0
                data[data > value] -= 1
                state.labels.clear_history()
                state.forced_dirty = True
            state.probabilities.clear()
        del session.classes[index]
        session.active_class = min(session.active_class, len(session.classes) - 1)
        self._edited()
        if session.current is not None:
            session.labels_changed.emit(session.current_index, session.current_slice, None)
            session.probabilities_changed.emit(session.current_index, session.current_slice)

    def _edited(self) -> None:
        self.session.saving.project_edited()
        self.session.classes_changed.emit()
