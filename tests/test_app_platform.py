"""Start-up on Linux without what Qt needs: one message that says what to install, not Qt's raw abort."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from unet_studio.core.errors import UNetStudioError
from unet_studio.gui.app import XCB_LIBRARIES, check_display, missing_xcb_packages, uses_x11

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the X11 check runs on Linux")


def test_missing_packages_are_named_from_a_fake_loader():
    absent = {"libxcb-icccm.so.4", "libxcb-cursor.so.0"}
    assert missing_xcb_packages(lambda soname: soname not in absent) == ["libxcb-cursor0", "libxcb-icccm4"]
    assert missing_xcb_packages(lambda soname: True) == []
    assert len(missing_xcb_packages(lambda soname: False)) == len(XCB_LIBRARIES)


@pytest.mark.parametrize("environ, x11", [
    ({"DISPLAY": ":0"}, True),
    ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, False),  # Qt may use Wayland: do not guess
    ({"QT_QPA_PLATFORM": "xcb"}, True),
    ({"QT_QPA_PLATFORM": "xcb;wayland", "WAYLAND_DISPLAY": "w"}, True),
    ({"QT_QPA_PLATFORM": "offscreen", "DISPLAY": ":0"}, False),
])
def test_x11_is_detected_from_the_environment(environ, x11):
    assert uses_x11(environ) is x11


@linux_only
def test_check_display_names_the_packages_in_one_line():
    with pytest.raises(UNetStudioError) as info:
        check_display({"DISPLAY": ":0"}, loads=lambda soname: soname != "libxcb-keysyms.so.1")
    message = str(info.value)
    assert "sudo apt install libxcb-keysyms1'" in message and "\n" not in message


@linux_only
def test_check_display_passes_when_everything_is_there_or_qt_is_offscreen():
    check_display({"DISPLAY": ":0"}, loads=lambda soname: True)
    check_display({"QT_QPA_PLATFORM": "offscreen"}, loads=lambda soname: False)


@linux_only
@pytest.mark.skipif(sys.platform.startswith("linux") and not missing_xcb_packages(),
                    reason="this system has every library Qt's X11 plugin needs")
def test_the_command_says_what_to_install_instead_of_qts_abort(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "WAYLAND_DISPLAY")}
    env.update(DISPLAY=":99", UNET_STUDIO_CONFIG_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "unet_studio"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 2, result.stderr
    assert "sudo apt install" in result.stderr and "libxcb" in result.stderr
    assert "platform plugin could be initialized" not in result.stderr  # Qt was never started
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
