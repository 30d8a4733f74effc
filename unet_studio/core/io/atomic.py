"""Atomic file writes: write to a temporary file in the same folder, flush, fsync, then ``os.replace``.

A reader (or a restarted application after a crash) sees either the old file or the new one, never a
half-written file. Errors (read-only folder, full disk) become :class:`ImageWriteError` and leave the old
file in place.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..errors import ImageWriteError


def _read_umask() -> int:
    # Read once at import: os.umask can only be read by setting it, which is not thread-safe later.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()

#: Bytes of the target's stem kept in a temporary name: enough to tell whose file it is, short enough that
#: ``.STEM.RANDOM.tmp.SUFFIX`` fits where the target's own name fits.
TEMPORARY_STEM_BYTES = 40


def describe_write_error(exc: OSError, path: Path) -> str:
    """``"cannot write PATH: <why>; <what to do>"`` for an ``OSError`` met while writing ``path``."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"cannot write {path}: the disk is full; free some space and try again"
    if exc.errno == errno.EFBIG:
        return (f"cannot write {path}: the file is too large for this disk or file system; "
                "write to another disk or free some space and try again")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write {path}: the folder is read-only or not writable; choose another folder"
    if exc.errno == errno.ENOENT:
        return f"cannot write {path}: the folder {path.parent} does not exist"
    return f"cannot write {path}: {exc.strerror or exc}"


def check_writable(folder: str | os.PathLike, what: str = "the output folder") -> Path:
    """Create ``folder`` if needed and make sure a file can be created in it; return it.

    Front ends call this before long work, so that a read-only folder is reported at once, not after
    an hour of training. Raises :class:`ImageWriteError` saying what to do.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ImageWriteError(f"{what} {folder} is a file, not a folder; choose a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".write-test.", dir=folder)
    except OSError as exc:
        reason = describe_write_error(exc, folder)[len(f"cannot write {folder}: "):]
        raise ImageWriteError(f"cannot write into {what} {folder}: {reason}") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    return folder


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The temporary name keeps the suffix of ``path`` so that writers that choose a format from the
    suffix (tifffile, imageio) still work, and only the start of its stem, so that a name near the file
    system's limit (255 bytes) still has room for the temporary one: ``.STEM-START.RANDOM.tmp.SUFFIX``.
    On any exception the temporary file is removed and the original file, if any, is untouched.
    """
    target = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{temporary_stem(target.stem)}.", suffix=f".tmp{target.suffix}", dir=target.parent
        )
    except OSError as exc:
        raise ImageWriteError(describe_write_error(exc, target)) from None
    os.close(fd)
    tmp = Path(tmp_name)
    # mkstemp creates the file owner-only (0600); give it the permissions a plain open() would.
    with contextlib.suppress(OSError):
        os.chmod(tmp, 0o666 & ~_UMASK)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except OSError as exc:
        raise ImageWriteError(describe_write_error(exc, target)) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(target.parent)


def temporary_stem(stem: str, max_bytes: int = TEMPORARY_STEM_BYTES) -> str:
    """The start of ``stem`` that fits in ``max_bytes`` of UTF-8 (whole characters), for temporary names."""
    return stem.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def _fsync_dir(folder: Path) -> None:
    # Make the rename itself durable; not possible on every platform (Windows), so best effort.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes(path, text.encode("utf-8"))
