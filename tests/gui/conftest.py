"""Fixtures for the application tests: the real main window and images made from the bundled sample.

Helpers live in gui_helpers.py. Tests of painting, undo, display, panels and training need no external
data: they use ``resources/sample_nuclei.tif`` (two 256 x 256 slices of fluorescent nuclei), which ships
with the package; only accuracy checks use the shared data folder (the ``data_dir`` fixture).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from PySide6 import QtWidgets

from unet_studio.resources import sample_image_path

from gui_helpers import tiny_configs

Button = QtWidgets.QMessageBox.StandardButton


@pytest.fixture(autouse=True)
def user_dirs(tmp_path, monkeypatch) -> Path:
    """Recent-projects list and untitled projects go to a temporary folder, never to ~/.config."""
    folder = tmp_path / "user-config"
    monkeypatch.setenv("UNET_STUDIO_CONFIG_DIR", str(folder))
    return folder


@pytest.fixture
def window(qtbot):
    """The real main window, shown; questions (``ask``, ``choose``) are answered by ``window.answers`` (recorded in
    ``asked``), else by their default."""
    from unet_studio.gui.main_window import MainWindow

    win = MainWindow()
    win.asked = []
    win.answers = {}

    def ask(title, text, buttons, default):
        win.asked.append(title)
        if title in win.answers:
            return win.answers[title]
        for choice in (Button.Discard, Button.Yes):
            if buttons & choice:
                return choice
        return default

    win.ask = ask
    win.choose = lambda title, text, options, default: win.asked.append(title) or win.answers.get(title, default)
    win.choose_folder = lambda title: None
    win.choose_files = lambda title: []
    win.training.config_hook = tiny_configs
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.training.shutdown()
    win.prediction.shutdown()




@pytest.fixture(scope="session")
def sample_stack() -> np.ndarray:
    """The bundled sample's pixels, (2, 256, 256) uint8."""
    return tifffile.imread(sample_image_path())


@pytest.fixture
def sample() -> Path:
    """The bundled sample image (an ImageJ stack of two 256 x 256 slices)."""
    return sample_image_path()


@pytest.fixture
def sample_512(tmp_path, sample_stack) -> Path:
    """The sample's first slice enlarged twice (each pixel a 2 x 2 block): one 512 x 512 image."""
    path = tmp_path / "nuclei 512.tif"
    tifffile.imwrite(path, np.kron(sample_stack[0], np.ones((2, 2), np.uint8)))
    return path


@pytest.fixture
def sample_large(tmp_path, sample_stack) -> Path:
    """The sample tiled into a (2, 700, 1100) stack: 3 x 5 tiles of the label overlay."""
    path = tmp_path / "nuclei large.tif"
    tifffile.imwrite(path, np.tile(sample_stack, (1, 3, 5))[:, :700, :1100], imagej=True, metadata={"axes": "ZYX"})
    return path
