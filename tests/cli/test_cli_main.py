"""The unet-studio command: help, version, errors as one line."""

import subprocess
import sys

from unet_studio import __version__
from unet_studio.cli import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as exc:
        assert exc.code == 0
    assert __version__ in capsys.readouterr().out


def test_console_script_help_lists_subcommands():
    result = subprocess.run([sys.executable, "-m", "unet_studio", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    for word in ("train", "predict", "--project", "image"):
        assert word in result.stdout


def test_user_error_is_one_line_without_traceback(capsys, monkeypatch):
    from unet_studio.core.errors import ImageReadError
    import unet_studio.cli as cli

    def failing_app(args):
        raise ImageReadError("cannot read /tmp/x.tif: not a TIFF file")

    monkeypatch.setattr(cli, "_run_app", failing_app)
    assert main(["/tmp/x.tif"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "unet-studio: error: cannot read /tmp/x.tif: not a TIFF file"
    assert "Traceback" not in err


def test_no_display_is_a_clear_message_not_a_qt_abort():
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "-m", "unet_studio"], capture_output=True, text=True, timeout=60,
                            env=env)
    assert result.returncode == 2
    assert "no display found" in result.stderr and "Traceback" not in result.stderr
