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
    workers = sys.modules.get("unet_studio.gui.workers")
    if workers is not None:
        running = list(workers.GeneratorWorker._running)
        for worker in running:
            worker.stop()
            worker.wait(5000)
        assert not running, f"test left {len(running)} background worker(s) running"
