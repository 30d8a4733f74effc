"""The QApplication and the ``main()`` that the ``unet-studio`` command calls.

Start-up stays fast (a visible window well under 2 s): PyTorch is imported only when training or
prediction starts, in the worker thread.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from ..resources import sample_image_path


def _check_display() -> None:
    """On Linux without a display, Qt aborts with a plugin message; say what is wrong instead."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        from ..core.errors import UNetStudioError

        raise UNetStudioError(
            "no display found (DISPLAY and WAYLAND_DISPLAY are unset): run the application on a desktop, "
            "through 'ssh -X', or under 'xvfb-run'; for headless work use 'unet-studio train' and "
            "'unet-studio predict'"
        )


def main(image: str | None = None, project: str | None = None) -> int:
    started = time.perf_counter()
    _check_display()
    from PySide6 import QtCore, QtWidgets

    from .main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("UNet Studio")
    app.setOrganizationName("unet-studio")
    window = MainWindow()
    window.show()
    if not os.environ.get("UNET_STUDIO_STARTUP_TIMING"):
        window.preload_compute_modules()
    if project:
        window.open_project(Path(project))
        if image:
            window.open_image(Path(image))
    elif image:
        window.open_image(Path(image))
    elif not window.actions.offer_recovery():  # labels of an untitled project a crash left behind
        window.open_image(sample_image_path())
    if os.environ.get("UNET_STUDIO_STARTUP_TIMING"):
        # Report when the first frame has been painted (bench/startup measurement), then quit.
        def report() -> None:
            print(f"window visible after {time.perf_counter() - started:.3f} s", file=sys.stderr)
            if os.environ.get("UNET_STUDIO_STARTUP_TIMING") == "quit":
                window.close()
                app.quit()

        QtCore.QTimer.singleShot(0, report)
    return app.exec()
