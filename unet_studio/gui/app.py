"""The QApplication and the ``main()`` that the ``unet-studio`` command calls."""

from __future__ import annotations

import sys
from pathlib import Path

from ..resources import sample_image_path


def main(image: str | None = None, project: str | None = None) -> int:
    from PySide6 import QtWidgets

    from .main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("UNet Studio")
    window = MainWindow()
    window.show()
    if project:
        window.open_project(Path(project))
    else:
        window.open_image(Path(image) if image else sample_image_path())
    return app.exec()
