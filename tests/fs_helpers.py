"""File-system helpers shared by the CLI and application tests."""

from __future__ import annotations

import errno
import tempfile
from pathlib import Path

import numpy as np
import tifffile


def training_folders(tmp_path, n=3, size=40, labels=None):
    """``images/`` and ``labels/`` folders of ``n`` paired noisy 0/255 masks (or the given ``labels``)."""
    rng = np.random.default_rng(0)
    images, label_dir = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    label_dir.mkdir()
    for i in range(n):
        mask = rng.random((size, size)) > 0.5
        tifffile.imwrite(images / f"im{i}.tif", (mask * 200 + rng.integers(0, 50, mask.shape)).astype(np.uint8))
        tifffile.imwrite(label_dir / f"im{i}.tif", (mask * 255).astype(np.uint8) if labels is None else labels)
    return images, label_dir


def refuse_writes_under(folder: Path, monkeypatch) -> None:
    """Make ``folder`` behave as read-only (the tests may run as root, which ignores permission bits):
    creating the temporary file of an atomic write there fails."""
    real = tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve().is_relative_to(folder.resolve()):
            raise PermissionError(errno.EACCES, "Permission denied", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
