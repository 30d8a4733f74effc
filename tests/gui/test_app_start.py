"""Start-up: the command opens a visible window fast, without importing PyTorch."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

CHECK = """
import sys
from pathlib import Path
from PySide6 import QtWidgets
from unet_studio.gui.main_window import MainWindow
app = QtWidgets.QApplication([])
window = MainWindow()
window.show()
window.open_image(Path(sys.argv[1]))
app.processEvents()
assert window.last_error is None, window.last_error
assert window.isVisible()
print("torch imported:", "torch" in sys.modules)
window.session.discard_untitled()
window.close()
"""


def _env(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", UNET_STUDIO_CONFIG_DIR=str(tmp_path))
    return env


def test_opening_an_image_does_not_import_torch(tmp_path, sample_large):
    result = subprocess.run([sys.executable, "-c", CHECK, str(sample_large)], env=_env(tmp_path), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "torch imported: False" in result.stdout


@pytest.mark.parametrize("image", ["sample_512", "sample_large"])
def test_cold_start_to_a_visible_window(tmp_path, request, image):
    env = _env(tmp_path)
    env["UNET_STUDIO_STARTUP_TIMING"] = "quit"
    path = request.getfixturevalue(image)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "unet_studio", str(path)], env=env,
                            capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert "window visible after" in result.stderr
    print(f"\ncold start of `unet-studio {image}`: {seconds:.2f} s to a visible window and exit")
    # How fast is measured by `python -m bench --only startup` against its peers; a start that hangs fails
    # through the subprocess's timeout above.


def test_warm_up_runs_in_the_background(window, qtbot):
    from unet_studio.gui.controllers.warmup import warm_up

    assert warm_up()  # every step of it works (it swallows errors in the application)
    window.preload_compute_modules(0)
    qtbot.waitUntil(lambda: window.warm_up.thread is not None, timeout=2000)
    qtbot.waitUntil(lambda: not window.warm_up.thread.is_alive(), timeout=60000)
