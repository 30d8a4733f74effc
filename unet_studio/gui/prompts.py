"""Modal questions of the window that are more than Yes/No: a choice among named options, image files.

The window's ``choose`` and ``choose_files`` call these; the tests replace the window's methods, so no
test ever waits on a dialog.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtWidgets

__all__ = ["ask_choice", "ask_image_files"]

IMAGE_FILTER = "Images (*.tif *.tiff *.png *.jpg *.jpeg *.bmp);;All files (*)"


def ask_choice(parent: QtWidgets.QWidget, title: str, text: str, options: list[str], default: str) -> str | None:
    """A message box with one button per option (and Cancel); returns the option chosen, or None."""
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Question, title, text,
                                QtWidgets.QMessageBox.StandardButton.Cancel, parent)
    buttons = {box.addButton(option, QtWidgets.QMessageBox.ButtonRole.AcceptRole): option for option in options}
    for button, option in buttons.items():
        if option == default:
            box.setDefaultButton(button)
    box.exec()
    return buttons.get(box.clickedButton())


def ask_image_files(parent: QtWidgets.QWidget, title: str, start: Path) -> list[Path]:
    """The file dialog for opening images; an empty list when cancelled."""
    paths, _ = QtWidgets.QFileDialog.getOpenFileNames(parent, title, str(start), IMAGE_FILTER)
    return [Path(path) for path in paths]
