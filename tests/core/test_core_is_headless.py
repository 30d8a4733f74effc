"""The core never imports Qt: it must run on servers and in the CLI without a display."""

import subprocess
import sys
from pathlib import Path

import unet_studio.core as core


def test_importing_core_imports_no_qt():
    """Every module of the core, subpackages included (walk_packages, not iter_modules), in a fresh interpreter."""
    code = (
        "import sys, importlib, pkgutil, unet_studio.core as core\n"
        "names = [m.name for m in pkgutil.walk_packages(core.__path__, 'unet_studio.core.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "bad = [n for n in ('PySide6', 'pyqtgraph', 'PyQt5', 'PyQt6', 'qtpy', 'superqt') if n in sys.modules]\n"
        "print(len(names), ','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    count, _, bad = result.stdout.strip().partition(" ")
    assert bad == "", f"core imported Qt: {bad}"
    subpackage_modules = {p for p in (Path(core.__file__).parent).rglob("*.py") if p.parent.name != "core"}
    assert int(count) > len(subpackage_modules), "the walk missed the subpackages"


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
