"""Fixtures for the application tests: the real main window (helpers live in gui_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6 import QtWidgets

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
    """The real main window, shown; questions are answered by ``window.answers`` (recorded in ``asked``)."""
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
    win.choose_folder = lambda title: None
    win.training.config_hook = tiny_configs
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    qtbot.waitExposed(win)
    yield win
    win.training.shutdown()
    win.prediction.shutdown()


