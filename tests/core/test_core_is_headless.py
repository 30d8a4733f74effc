"""The core never imports Qt: it must run on servers and in the CLI without a display."""

import subprocess
import sys


def test_importing_core_imports_no_qt():
    code = (
        "import sys, importlib, pkgutil, unet_studio.core as core\n"
        "for m in pkgutil.iter_modules(core.__path__):\n"
        "    importlib.import_module('unet_studio.core.' + m.name)\n"
        "bad = [n for n in ('PySide6', 'pyqtgraph', 'PyQt5', 'PyQt6', 'qtpy', 'superqt') if n in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"core imported Qt: {result.stdout}"


def test_cli_help_does_not_import_torch_or_qt():
    code = (
        "import sys\n"
        "from unet_studio.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print([n for n in ('torch', 'PySide6') if n in sys.modules], file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "train" in result.stdout and "predict" in result.stdout
    assert result.stderr.strip().endswith("[]"), result.stderr
