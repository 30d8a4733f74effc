"""For tests that read or write zarr: release zarr's I/O thread and event loop after each test.

zarr runs its reads and writes on one process-wide event loop in a thread of its own (and that loop's
executor threads), started on first use and kept for the life of the process. The suite fails a test that
leaves a thread running, so a zarr test stops them when it ends; the next use starts them again.
"""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def release_zarr_threads():
    """Autouse in a test module by importing it there: ``from zarr_helpers import release_zarr_threads``."""
    yield
    import sys

    sync = sys.modules.get("zarr.core.sync")
    if sync is not None:
        sync.cleanup_resources()
