"""Crash detection for project folders: a small lock file names the process that has a project open.

The application writes ``PROJECT/.unet-studio.lock`` (process id, host, process start) when it opens a
project and removes it when it closes the project cleanly. A lock whose process is gone means that the
application was killed or crashed with the project open: the project then holds the labels of its last
autosave (every file is replaced atomically, so each one is complete), and :func:`claim` says so, so
that the person can be told. :func:`crashed_untitled_projects` lists the untitled projects (autosaved
scratch folders) left by a crashed session, for the offer to recover them at start.

Qt-free; a missing or unreadable lock is never an error (the lock is a hint, the data are the files).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import UNetStudioError
from ..io import write_text
from .layout import ProjectLayout

log = logging.getLogger(__name__)

#: The largest process id any system hands out (Linux: 2**22; a lock with a larger one is damaged).
MAX_PID = 2**31 - 1
#: A lock file is a few hundred bytes; a bigger one is not ours and is not read.
MAX_LOCK_BYTES = 64 * 1024


@dataclass(frozen=True)
class PreviousSession:
    """The session that had a project open before this one: crashed, or still running elsewhere."""

    folder: Path
    pid: int
    host: str
    running: bool              # True: another UNet Studio has the project open right now
    last_saved: float | None   # time.time() of the newest saved file (labels or project.json)

    @property
    def crashed(self) -> bool:
        return not self.running

    def last_saved_text(self) -> str:
        """``HH:MM:SS`` (with the date when it is not today) of the last autosave, or "unknown"."""
        if self.last_saved is None:
            return "unknown"
        stamp = time.localtime(self.last_saved)
        today = time.localtime()
        same_day = stamp[:3] == today[:3]
        return time.strftime("%H:%M:%S" if same_day else "%Y-%m-%d %H:%M:%S", stamp)


# -- processes ---------------------------------------------------------------------------------

def process_start(pid: int) -> str | None:
    """A token that differs between two processes that had the same pid (Linux), else None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces and parentheses): state is field 3,
    # the start time field 22.
    fields = text.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def _is_zombie(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = text.rsplit(")", 1)[-1].split()
    return bool(fields) and fields[0] == "Z"


def _pid_alive(pid: int) -> bool:
    if not 0 < pid <= MAX_PID:
        return False
    if sys.platform == "win32":
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except (OSError, OverflowError, ValueError):
        return False
    return not _is_zombie(pid)  # a killed process not yet reaped by its parent is dead too


def _pid_alive_windows(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return kernel32.GetLastError() == 5  # access denied: it exists
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _this_process() -> dict:
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "start": process_start(pid), "opened": time.time()}


def _is_this_process(holder: dict) -> bool:
    me = _this_process()
    return holder.get("pid") == me["pid"] and holder.get("host") == me["host"]


def _valid_pid(pid: object) -> int | None:
    return pid if type(pid) is int and 0 < pid <= MAX_PID else None


def _holder_running(holder: dict) -> bool:
    pid, host = _valid_pid(holder.get("pid")), holder.get("host")
    if pid is None or not isinstance(host, str) or not host:
        return False  # a damaged lock is a stale lock
    if host != socket.gethostname():
        return True  # a process on another computer (shared folder): it cannot be checked, assume it runs
    if not _pid_alive(pid):
        return False
    start = holder.get("start")
    # The pid was reused by a process started later: the one that wrote the lock is gone.
    return start is None or process_start(pid) in (None, start)


# -- the lock ----------------------------------------------------------------------------------

def read_lock(folder: str | os.PathLike) -> dict | None:
    """The lock of ``folder`` as written by :func:`claim`, or None (absent or unreadable)."""
    path = ProjectLayout(Path(folder)).lock_file
    try:
        if path.stat().st_size > MAX_LOCK_BYTES:
            return {}  # not a lock this program wrote: a damaged, stale lock
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def last_saved(folder: str | os.PathLike) -> float | None:
    """Modification time of the newest labels file or project.json of ``folder``."""
    layout = ProjectLayout(Path(folder))
    times = []
    for path in [layout.project_file, *layout.labels_files()]:
        with contextlib.suppress(OSError):
            times.append(path.stat().st_mtime)
    return max(times, default=None)


def previous_session(folder: str | os.PathLike) -> PreviousSession | None:
    """Who else had ``folder`` open (crashed or running), or None when it was closed cleanly."""
    folder = Path(folder)
    holder = read_lock(folder)
    if holder is None or _is_this_process(holder):
        return None
    return PreviousSession(folder=folder, pid=_valid_pid(holder.get("pid")) or -1,
                           host=str(holder.get("host", ""))[:100], running=_holder_running(holder),
                           last_saved=last_saved(folder))


def claim(folder: str | os.PathLike) -> PreviousSession | None:
    """Mark ``folder`` as open by this process; return the previous session when it did not close cleanly.

    After a crash, the temporary files of writes that the crash interrupted are removed (the files
    they were to replace are complete: the previous version).
    """
    folder = Path(folder)
    previous = previous_session(folder)
    if previous is not None and previous.crashed:
        remove_temporary_files(folder)
    try:
        write_text(ProjectLayout(folder).lock_file, json.dumps(_this_process()))
    except UNetStudioError as exc:  # a read-only project still opens; saving will say what is wrong
        log.warning("cannot mark %s as open: %s", folder, exc)
    return previous


def release(folder: str | os.PathLike | None) -> None:
    """Remove the lock of ``folder`` when this process holds it (the project was closed cleanly)."""
    if folder is None:
        return
    path = ProjectLayout(Path(folder)).lock_file
    holder = read_lock(folder)
    if holder is not None and _is_this_process(holder):
        with contextlib.suppress(OSError):
            path.unlink()


def remove_temporary_files(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files of interrupted atomic writes in a project folder; return them."""
    removed = []
    for place in ProjectLayout(Path(folder)).temp_places():
        for path in place.glob(".*.tmp*"):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) of interrupted writes in %s", len(removed), folder)
    return removed


# -- untitled projects ---------------------------------------------------------------------------

def has_labels(folder: str | os.PathLike) -> bool:
    """Whether a project folder holds a labels file with at least one labelled pixel (or a chunk of a big
    image's chunked labels)."""
    import numpy as np
    import tifffile

    layout = ProjectLayout(Path(folder))
    # A big image's labels: a chunked store (labels/NAME_labels.ome.zarr) whose chunks hold only painted regions.
    if any(any((store / "0" / "c").glob("*")) for store in layout.labels_dir.glob("*_labels.ome.zarr")):
        return True
    for path in layout.labels_files():
        try:
            if np.asarray(tifffile.imread(path)).any():
                return True
        except Exception:  # noqa: BLE001 - tifffile raises many types; let the person look at it
            return True
    return False


def crashed_untitled_projects(untitled_dir: str | os.PathLike) -> list[PreviousSession]:
    """Untitled project folders whose session crashed, newest autosave first."""
    base = Path(untitled_dir)
    if not base.is_dir():
        return []
    found = []
    for folder in base.iterdir():
        if not ProjectLayout(folder).project_file.is_file():
            continue
        previous = previous_session(folder)
        if previous is not None and previous.crashed:
            found.append(previous)
    return sorted(found, key=lambda p: p.last_saved or 0.0, reverse=True)
