"""How much memory is free, and refusing work that would not fit in it (with a message a person reads).

Reading a huge image, or predicting a huge slice, is refused up front with what to do instead, rather
than the process being killed by the system's out-of-memory handler halfway.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from .tiff import read_error as _fail


def available_ram() -> int:
    """Bytes of memory this process can still use: ``MemAvailable`` (Linux), capped by a cgroup limit.

    Elsewhere the free physical pages, when the system says; a very large number when nothing is known
    (then nothing is refused on memory grounds).
    """
    free = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    free = int(line.split()[1]) * 1024
                    break
    if free is None:
        with contextlib.suppress(ValueError, OSError, AttributeError):
            free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    free = 1 << 62 if free is None else free
    with contextlib.suppress(OSError, ValueError, IndexError):  # a container's memory limit (cgroup v2)
        cgroup = Path("/sys/fs/cgroup")
        limit = (cgroup / "memory.max").read_text().strip()
        if limit != "max":
            used = int((cgroup / "memory.current").read_text().strip())
            # The page cache counts as used but is given back on demand: only the working set is taken.
            stat = dict(line.split()[:2] for line in (cgroup / "memory.stat").read_text().splitlines())
            used -= int(stat.get("inactive_file", 0))
            free = min(free, max(int(limit) - used, 0))
    return int(free)


def format_bytes(n: float) -> str:
    """``1.5 GiB``, ``300 MiB``: sizes as a person reads them."""
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{max(n / 2**20, 0.1):.1f} MiB"


def require_memory(path: str | os.PathLike, needed: int, what: str, doing: str = "reading") -> None:
    """Raise :class:`ImageReadError` when ``needed`` bytes are more than the memory available now.

    ``what`` names the data (``"the image (40000 x 40000 pixels, ...)"``), ``doing`` what needs it.
    """
    free = available_ram()
    if needed > free:
        raise _fail(Path(path), f"{doing} {what} needs about {format_bytes(needed)} of memory, but only "
                    f"{format_bytes(free)} is available",
                    "Crop or downsample the image (e.g. in Fiji with Image > Crop or Image > Scale) or split "
                    "it into smaller files, close other programs, or use a computer with more memory")
