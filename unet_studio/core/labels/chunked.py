"""Labels of images too big for memory: a chunked label store on disk (OME-Zarr) and a volume that edits it.

A :class:`ChunkedLabelVolume` is a :class:`~.volume.LabelVolume` whose ``data`` is a memory-mapped scratch
file (``np.memmap``, sparse on disk: only the pages painted take space and memory), so that brush, line,
fill, undo and redo work unchanged, on a 40000 x 40000 image too. The volume remembers which chunks an
edit (or an undo) touched; saving writes only those chunks into a :class:`ChunkedLabelStore`, a
``labels/NAME_labels.ome.zarr`` folder in the project (an NGFF image with one level, axes ``z, y, x``, that
napari and Fiji open). Opening reads back only the chunks that exist in the store (zarr writes no chunk
that holds only zeros), so a restart shows the painting without reading the whole label image.

zarr is optional (the ``zarr`` extra) and imported inside the functions that need it.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .volume import LabelVolume

log = logging.getLogger(__name__)

__all__ = ["CHUNK", "ChunkPatch", "ChunkedLabelStore", "ChunkedLabelVolume", "chunked_labels_path"]

CHUNK = 1024
"""Side of a label chunk (pixels): a brush stroke rewrites a few chunks of 1 MiB at most."""

NEEDS_ZARR = "painting on big images needs the zarr extra: pip install 'unet-studio[zarr]'"

ChunkKey = tuple[int, int, int]  # slice, chunk row, chunk column


def chunked_labels_path(tiff_path: str | os.PathLike) -> Path:
    """``labels/NAME_labels.ome.zarr`` beside the ``labels/NAME_labels.tif`` of an image that fits in memory."""
    path = Path(tiff_path)
    return path.with_name(path.name[: -len(path.suffix)] + ".ome.zarr")


def _zarr():
    try:
        import zarr
    except ImportError:
        from ..errors import UNetStudioError

        raise UNetStudioError(NEEDS_ZARR) from None
    return zarr


class ChunkedLabelStore:
    """An OME-Zarr label image ``(S, Y, X)`` uint8 in chunks of :data:`CHUNK`; only painted chunks exist.

    Parameters
    ----------
    path : path-like
        The ``.ome.zarr`` folder (created on the first write).
    shape : tuple of int
        ``(S, Y, X)`` of the image's labels.
    """

    def __init__(self, path: str | os.PathLike, shape: tuple[int, int, int]) -> None:
        self.path = Path(path)
        self.shape = tuple(int(n) for n in shape)
        self._array = None

    def exists(self) -> bool:
        return (self.path / "0" / "zarr.json").is_file()

    def array(self, create: bool = False):
        """The zarr array (level 0), opened once; created with its OME metadata when ``create``."""
        if self._array is not None:
            return self._array
        zarr = _zarr()
        if self.exists():
            array = zarr.open_array(self.path / "0", mode="r+")
            if tuple(array.shape) != self.shape:
                from ..errors import ImageReadError

                raise ImageReadError(f"the labels {self.path} are {tuple(array.shape)}, the image {self.shape}: "
                                     "they belong to another image; move them away to start this image's labels "
                                     "again")
        elif create:
            group = zarr.open_group(self.path, mode="a")
            group.attrs["ome"] = {"version": "0.5", "multiscales": [{
                "name": "labels", "axes": [{"name": "z", "type": "space"}, {"name": "y", "type": "space"},
                                           {"name": "x", "type": "space"}],
                "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]}],
            }]}
            array = group.create_array("0", shape=self.shape, chunks=(1, CHUNK, CHUNK), dtype="uint8",
                                       fill_value=0)
        else:
            return None
        self._array = array
        return array

    def chunk_keys(self) -> list[ChunkKey]:
        """The chunks that hold labels (files of the store; zarr leaves chunks of zeros out)."""
        root = self.path / "0" / "c"
        keys = []
        if not root.is_dir():
            return keys
        for s_dir in root.iterdir():
            for y_dir in (s_dir.iterdir() if s_dir.is_dir() else ()):
                for x_file in (y_dir.iterdir() if y_dir.is_dir() else ()):
                    try:
                        keys.append((int(s_dir.name), int(y_dir.name), int(x_file.name)))
                    except ValueError:
                        continue  # a temporary file of a write in progress
        return sorted(keys)

    def read_chunk(self, key: ChunkKey) -> np.ndarray:
        s, y0, y1, x0, x1 = chunk_box(key, self.shape)
        return np.asarray(self.array()[s, y0:y1, x0:x1])

    def write_chunks(self, chunks: list[tuple[ChunkKey, np.ndarray]]) -> None:
        """Write whole chunks (zarr writes each chunk file whole; a chunk of zeros is removed)."""
        array = self.array(create=True)
        for key, values in chunks:
            s, y0, y1, x0, x1 = chunk_box(key, self.shape)
            array[s, y0:y1, x0:x1] = values


def chunk_box(key: ChunkKey, shape: tuple[int, int, int]) -> tuple[int, int, int, int, int]:
    """``(s, y0, y1, x0, x1)`` of a chunk, clipped to ``shape``."""
    s, cy, cx = key
    return s, cy * CHUNK, min((cy + 1) * CHUNK, shape[1]), cx * CHUNK, min((cx + 1) * CHUNK, shape[2])


class ChunkPatch:
    """The chunks one save writes (copies made on the GUI thread), and where; :meth:`write` runs on any thread."""

    def __init__(self, volume: ChunkedLabelVolume, store: ChunkedLabelStore,
                 chunks: list[tuple[ChunkKey, np.ndarray]]) -> None:
        self.volume, self.store, self.chunks = volume, store, chunks

    def write(self) -> None:
        """Write the chunks; on failure they are marked unsaved again (the next save retries them)."""
        try:
            self.store.write_chunks(self.chunks)
        except BaseException:
            self.volume.mark_unsaved(key for key, _ in self.chunks)
            raise


class ChunkedLabelVolume(LabelVolume):
    """A :class:`LabelVolume` of a big image: a memory-mapped scratch array saved chunk by chunk.

    Parameters
    ----------
    shape : tuple of int
        ``(S, Y, X)``.
    store : ChunkedLabelStore or None
        Where the labels are saved; its chunks are read in now (only those that exist). None for an image
        of a project without a folder yet (:meth:`patch` is then given the store).
    max_undo_bytes : int
        As for :class:`LabelVolume`.
    """

    def __init__(self, shape: tuple[int, int, int], store: ChunkedLabelStore | None,
                 max_undo_bytes: int = 256 * 2**20) -> None:
        super().__init__(shape=(1, 1, 1), max_undo_bytes=max_undo_bytes)
        self._scratch = Path(tempfile.mkdtemp(prefix="unet-studio-labels-"))
        # A sparse file: untouched pages take neither disk nor memory, and the OS pages painted ones out.
        self.data = np.memmap(self._scratch / "labels.u8", dtype=np.uint8, mode="w+", shape=tuple(shape))
        self.store = store
        self._lock = threading.Lock()
        self._unsaved: set[ChunkKey] = set()
        self.painted: set[ChunkKey] = set()  # chunks that hold (or held) labels: what a full save writes
        if store is not None and store.exists():
            for key in store.chunk_keys():
                s, y0, y1, x0, x1 = chunk_box(key, self.shape)
                self.data[s, y0:y1, x0:x1] = store.read_chunk(key)
                self.painted.add(key)

    # ------------------------------------------------------------------ what changed

    def has_labels(self) -> bool:
        """Whether any chunk holds labels (without scanning the array)."""
        return any(self._chunk(key).any() for key in self.painted)

    def labelled_slices(self) -> list[int]:
        return sorted({key[0] for key in self.painted if self._chunk(key).any()})

    def painted_boxes(self, slice_index: int) -> list[tuple[int, int, int, int]]:
        """``(y0, y1, x0, x1)`` of the chunks of a slice that hold labels."""
        return [chunk_box(key, self.shape)[1:] for key in sorted(self.painted)
                if key[0] == slice_index and self._chunk(key).any()]

    def mark_unsaved(self, keys) -> None:
        with self._lock:
            self._unsaved.update(keys)

    def patch(self, store: ChunkedLabelStore | None = None, everything: bool = False) -> ChunkPatch:
        """Copies of the unsaved chunks (every painted chunk when ``everything``), to write into ``store``.

        A ``store`` other than the volume's (the project moved, or got its first folder) gets every painted
        chunk and becomes the volume's store.
        """
        if store is not None and (self.store is None or store.path != self.store.path):
            everything, self.store = True, store
        store = store or self.store
        with self._lock:
            keys = set(self.painted) if everything else set(self._unsaved)
            self._unsaved.clear()
        chunks = [(key, self._chunk(key).copy()) for key in sorted(keys)]
        return ChunkPatch(self, store, chunks)

    def _chunk(self, key: ChunkKey) -> np.ndarray:
        s, y0, y1, x0, x1 = chunk_box(key, self.shape)
        return self.data[s, y0:y1, x0:x1]

    def _mark(self, slice_index: int, box) -> None:
        y0, y1, x0, x1 = box
        keys = {(slice_index, cy, cx) for cy in range(y0 // CHUNK, (max(y1, y0 + 1) - 1) // CHUNK + 1)
                for cx in range(x0 // CHUNK, (max(x1, x0 + 1) - 1) // CHUNK + 1)}
        self.painted |= keys
        self.mark_unsaved(keys)

    def remove_class(self, value: int) -> bool:
        """Unlabel ``value`` and move higher values down one, chunk by chunk (undo history cleared).

        Returns True when a pixel changed. Only the chunks that hold labels are read.
        """
        changed = False
        for key in sorted(self.painted):
            chunk = self._chunk(key)
            if (chunk >= value).any():
                chunk[chunk == value] = 0
                chunk[chunk > value] -= 1
                self.mark_unsaved([key])
                changed = True
        if changed:
            self.clear_history()
            self.version += 1
        return changed

    # ------------------------------------------------------------------ LabelVolume hooks

    def widen(self, max_value: int) -> bool:
        if int(max_value) > np.iinfo(np.uint8).max:
            raise ValueError("the labels of a big image hold at most 255 classes")
        return False

    @contextmanager
    def _edit(self, slice_index: int, accepted: bool = False):
        with super()._edit(slice_index, accepted) as item:
            start = len(item.changes)
            try:
                yield item
            finally:
                for change in item.changes[start:]:
                    if change.layer == "labels":
                        self._mark(change.slice_index, change.box)

    def _applied(self, item):
        if item is not None:
            for change in item.changes:
                if change.layer == "labels":
                    self._mark(change.slice_index, change.box)
        return super()._applied(item)

    def close(self) -> None:
        """Remove the scratch file (unsaved edits are gone: save first)."""
        data, self.data = self.data, np.zeros((1, 1, 1), np.uint8)
        mmap = getattr(data, "_mmap", None)
        del data
        if mmap is not None:
            try:
                mmap.close()
            except (BufferError, ValueError):  # a view is still alive: the file goes with the process
                log.debug("scratch labels still mapped", exc_info=True)
        shutil.rmtree(self._scratch, ignore_errors=True)
