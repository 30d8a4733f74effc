"""The QApplication and the ``main()`` that the ``unet-studio`` command calls.

Start-up stays fast (a visible window well under 2 s): PyTorch is imported only when training or
prediction starts, in the worker thread.
"""

from __future__ import annotations

import ctypes
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from ..resources import sample_image_path


#: The system libraries Qt's X11 platform plugin (``libqxcb.so``) links, with the Debian/Ubuntu package of
#: each. PySide6's wheels bring Qt but not these; without them Qt aborts with "could not load the Qt
#: platform plugin", which does not say what to install.
XCB_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0", "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1", "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-image.so.0": "libxcb-image0", "libxcb-util.so.1": "libxcb-util1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0", "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0", "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1", "libxcb-shm.so.0": "libxcb-shm0", "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-render.so.0": "libxcb-render0", "libX11-xcb.so.1": "libx11-xcb1", "libxcb.so.1": "libxcb1",
}


def library_loads(soname: str) -> bool:
    """True when the dynamic loader finds and loads ``soname``, as it would for Qt's plugin."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True


def missing_xcb_packages(loads: Callable[[str], bool] = library_loads) -> list[str]:
    """Packages (Debian/Ubuntu names) of the X11 libraries Qt needs that ``loads`` cannot load, in order."""
    return [package for soname, package in XCB_LIBRARIES.items() if not loads(soname)]


def uses_x11(environ: Mapping[str, str]) -> bool:
    """True when Qt will use its X11 platform plugin: asked for, or an X11 session without Wayland."""
    platform = environ.get("QT_QPA_PLATFORM", "")
    if platform:
        return platform.split(":")[0].split(";")[0] == "xcb"
    return bool(environ.get("DISPLAY")) and not environ.get("WAYLAND_DISPLAY")


def check_display(environ: Mapping[str, str] | None = None,
                  loads: Callable[[str], bool] = library_loads) -> None:
    """On Linux, say what is missing before Qt aborts: a display, or the X11 libraries of its platform plugin.

    Raises
    ------
    UNetStudioError
        No display, or the system lacks libraries Qt's X11 plugin needs (the message names the packages).
    """
    environ = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return
    from ..core.errors import UNetStudioError

    if not environ.get("QT_QPA_PLATFORM") and not (environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY")):
        raise UNetStudioError(
            "no display found (DISPLAY and WAYLAND_DISPLAY are unset): run the application on a desktop, "
            "through 'ssh -X', or under 'xvfb-run'; for headless work use 'unet-studio train' and "
            "'unet-studio predict'"
        )
    missing = missing_xcb_packages(loads) if uses_x11(environ) else []
    if missing:
        raise UNetStudioError(
            f"Qt cannot start on X11: the system lacks libraries its platform plugin needs; install them "
            f"(Debian/Ubuntu: 'sudo apt install {' '.join(missing)}'; Fedora: 'sudo dnf install "
            "xcb-util-cursor xcb-util-wm xcb-util-keysyms xcb-util-renderutil xcb-util-image "
            "libxkbcommon-x11'), then start UNet Studio again"
        )


def main(image: str | None = None, project: str | None = None) -> int:
    started = time.perf_counter()
    check_display()
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
