"""The chunked label store of big images (issue 18 item 4): edits write only their chunks; undo, reopen."""

from __future__ import annotations

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from unet_studio.core.labels import ChunkedLabelStore, ChunkedLabelVolume, chunked_labels_path  # noqa: E402
from unet_studio.core.labels.chunked import CHUNK  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def zarr_threads(tmp_path_factory):
    """zarr starts its I/O threads once per process: start them before the thread check of each test."""
    warm = zarr.create_array(tmp_path_factory.mktemp("warm") / "a.zarr", shape=(64, 64), chunks=(4, 4), dtype="u1")
    for _ in range(3):  # its thread pool grows with concurrent chunk reads and writes, up to its size
        warm[:] = 1
        warm[:].sum()


SHAPE = (2, 3 * CHUNK + 100, 2 * CHUNK + 7)


def test_painting_saves_only_the_touched_chunks_and_reopens(tmp_path):
    store = ChunkedLabelStore(tmp_path / "a_labels.ome.zarr", SHAPE)
    volume = ChunkedLabelVolume(SHAPE, store)
    assert isinstance(volume.data, np.memmap) and not volume.has_labels()
    volume.begin_stroke(1)
    box = volume.paint_line(1, (CHUNK - 5, 10), (CHUNK + 5, 10), 3, 2)
    volume.end_stroke()
    assert box is not None and volume.labelled_slices() == [1]
    patch = volume.patch()
    assert sorted(key for key, _ in patch.chunks) == [(1, 0, 0), (1, 1, 0)]
    patch.write()
    assert store.chunk_keys() == [(1, 0, 0), (1, 1, 0)]
    assert volume.patch().chunks == []  # nothing unsaved any more
    expected = np.asarray(volume.data).copy()
    volume.close()

    again = ChunkedLabelVolume(SHAPE, ChunkedLabelStore(store.path, SHAPE))
    np.testing.assert_array_equal(np.asarray(again.data), expected)
    assert again.labelled_slices() == [1]
    again.close()


def test_undo_marks_its_chunks_and_erasing_removes_the_chunk(tmp_path):
    store = ChunkedLabelStore(tmp_path / "b.ome.zarr", SHAPE)
    volume = ChunkedLabelVolume(SHAPE, store)
    volume.paint_disk(0, 2 * CHUNK + 50, CHUNK + 30, 4, 1)
    volume.patch().write()
    assert store.chunk_keys() == [(0, 2, 1)]
    assert volume.undo() is not None and not volume.data.any()
    volume.patch().write()
    assert store.chunk_keys() == []  # a chunk of zeros is not kept
    assert not volume.has_labels()
    volume.close()


def test_a_failed_write_keeps_the_chunks_unsaved(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    volume = ChunkedLabelVolume(SHAPE, ChunkedLabelStore(blocker / "c.ome.zarr", SHAPE))
    volume.paint_disk(0, 10, 10, 2, 1)
    with pytest.raises(Exception):  # noqa: B017 - whatever the file system says
        volume.patch().write()
    assert [key for key, _ in volume.patch().chunks] == [(0, 0, 0)]
    volume.close()


def test_labels_of_another_shape_are_refused(tmp_path):
    from unet_studio.core.errors import UNetStudioError

    store = ChunkedLabelStore(tmp_path / "d.ome.zarr", SHAPE)
    volume = ChunkedLabelVolume(SHAPE, store)
    volume.paint_disk(0, 10, 10, 2, 1)
    volume.patch().write()
    volume.close()
    with pytest.raises(UNetStudioError, match="another image"):
        ChunkedLabelVolume((1, 50, 50), ChunkedLabelStore(store.path, (1, 50, 50)))


def test_the_store_is_an_ome_zarr_beside_the_tiff_labels(tmp_path):
    assert chunked_labels_path(tmp_path / "labels" / "a_labels.tif").name == "a_labels.ome.zarr"
    store = ChunkedLabelStore(tmp_path / "e.ome.zarr", SHAPE)
    store.write_chunks([((0, 0, 0), np.ones((CHUNK, CHUNK), np.uint8))])
    meta = dict(zarr.open_group(store.path, mode="r").attrs)["ome"]["multiscales"][0]
    assert [a["name"] for a in meta["axes"]] == ["z", "y", "x"] and meta["datasets"][0]["path"] == "0"


def test_removing_a_class_rewrites_only_painted_chunks(tmp_path):
    store = ChunkedLabelStore(tmp_path / "f.ome.zarr", SHAPE)
    volume = ChunkedLabelVolume(SHAPE, store)
    volume.paint_disk(0, 10, 10, 3, 1)
    volume.paint_disk(1, 2 * CHUNK + 10, 10, 3, 3)
    volume.patch().write()
    version = volume.version
    assert volume.remove_class(1)
    assert volume.version > version and not volume.can_undo
    assert volume.data[0, 10, 10] == 0 and volume.data[1, 2 * CHUNK + 10, 10] == 2
    assert sorted(key for key, _ in volume.patch().chunks) == [(0, 0, 0), (1, 2, 0)]
    volume.close()


def test_a_project_with_chunked_labels_counts_as_labelled_for_recovery(tmp_path):
    from unet_studio.core.project import has_labels

    folder = tmp_path / "untitled"
    (folder / "labels").mkdir(parents=True)
    assert not has_labels(folder)
    store = ChunkedLabelStore(folder / "labels" / "big_labels.ome.zarr", SHAPE)
    store.write_chunks([((0, 1, 1), np.ones((CHUNK, CHUNK), np.uint8))])
    assert has_labels(folder)
