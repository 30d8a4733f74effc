"""Minimal main window (placeholder until the application issue lands): shows one image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtWidgets

from ..core import io
from ..core.errors import UNetStudioError


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("UNet Studio")
        self.resize(900, 700)
        self.view = pg.ImageView()
        self.setCentralWidget(self.view)

    def open_image(self, path: Path) -> None:
        try:
            stack = io.read_image(path)
            data = stack.get_slice(0)
        except UNetStudioError as exc:
            QtWidgets.QMessageBox.warning(self, "Cannot open image", str(exc))
            return
        self.view.setImage(np.asarray(data[0], dtype=np.float32).T)
        self.setWindowTitle(f"UNet Studio - {path.name}")

    def open_project(self, folder: Path) -> None:
        self.statusBar().showMessage(f"projects are not supported yet: {folder}")
