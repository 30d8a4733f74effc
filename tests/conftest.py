"""Shared fixtures: the real data folder, offscreen Qt, and a check that no test leaves a thread running."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("UNET_STUDIO_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data`` (or $UNET_STUDIO_DATA); tests that need it skip when it is absent."""
    if not (DATA / "isbi2012").is_dir():
        pytest.skip(f"real data not found at {DATA} (set UNET_STUDIO_DATA to the shared/data folder)")
    return DATA


@pytest.fixture(autouse=True)
def no_thread_left_behind():
    """Fail any test that leaves a Python thread running (QThreads are checked in tests/gui)."""
    before = set(threading.enumerate())
    yield
    # zarr keeps one process-wide I/O thread (and loop) from its first use: any test that touches a zarr
    # store, even through a bad-input path, stops it here (the next use starts it again; tests/zarr_helpers.py)
    sync = sys.modules.get("zarr.core.sync")
    if sync is not None:
        sync.cleanup_resources()
    deadline = 5.0
    leftover = []
    for thread in set(threading.enumerate()) - before:
        # A _DummyThread stands for a thread Python did not start (a QThread that logged): those are
        # checked below through the worker registry, and cannot be joined.
        if isinstance(thread, threading._DummyThread):
            continue
        thread.join(timeout=deadline)
        if thread.is_alive():
            leftover.append(thread.name)
    assert not leftover, f"test left threads running: {leftover}"
    workers = sys.modules.get("unet_studio.gui.controllers.workers")
    if workers is not None:
        running = list(workers.GeneratorWorker._running)
        for worker in running:
            worker.stop()
            worker.wait(5000)
        assert not running, f"test left {len(running)} background worker(s) running"


@pytest.fixture
def larger_than_memory_tiff(tmp_path) -> Path:
    """A TIFF whose header declares an image four times the memory available (at least 64 GiB).

    The pixels are never written: the file is sparse and takes a few KiB on disk. Skips where the file
    system cannot hold such a file.
    """
    import math

    import numpy as np
    import tifffile

    from unet_studio.core.io.stack import available_ram

    side = math.isqrt(max(4 * available_ram(), 64 << 30)) + 1
    path = tmp_path / "huge scan.tif"
    try:
        data = tifffile.memmap(path, shape=(side, side), dtype=np.uint8, photometric="minisblack")
        del data
    except (OSError, ValueError) as exc:
        pytest.skip(f"cannot create a sparse {side} x {side} TIFF here: {exc}")
    if getattr(path.stat(), "st_blocks", 0) * 512 > 64 << 20:
        path.unlink()
        pytest.skip("this file system does not keep files sparse")
    yield path
    path.unlink(missing_ok=True)


@pytest.fixture
def restore_torch_threads():
    """Training and prediction set the process's CPU threads; give the next tests what they had
    (``pytestmark = pytest.mark.usefixtures("restore_torch_threads")`` in the files that train)."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def starting_models(tmp_path, monkeypatch):
    """A stand-in for the bundled starting models (a tiny "nuclei" model), found through UNET_STUDIO_MODELS."""
    from model_helpers import write_starting_model

    from unet_studio import resources

    folder = tmp_path / "bundled"
    write_starting_model(folder)
    monkeypatch.setenv(resources.MODELS_ENV, str(folder))
    return folder
