"""Big images in the application (issue 18 item 4): an OME-Zarr opened from its pyramid, refined on zoom,
painted into a chunked label store that autosave, undo and a restart keep. The real window, offscreen,
with real wheel, mouse and key events; "big" is a 4096 x 4096 image under a lowered threshold."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtTest import QTest

from gui_helpers import mouse_stroke

zarr = pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")

SIDE = 4096
BIG = 1 << 20  # bytes of a slice above which an image is big, in these tests


@pytest.fixture(scope="module", autouse=True)
def zarr_threads(tmp_path_factory):
    """zarr starts its I/O threads once per process: start them before the thread check of each test."""
    warm = zarr.create_array(tmp_path_factory.mktemp("warm") / "a.zarr", shape=(64, 64), chunks=(4, 4), dtype="u1")
    for _ in range(3):
        warm[:] = 1
        warm[:].sum()


@pytest.fixture(scope="module")
def big_zarr(tmp_path_factory):
    """A 4096 x 4096 uint16 OME-Zarr (chunks of 512, levels 4096 .. 256): a gradient with a bright square."""
    from unet_studio.core import io

    path = tmp_path_factory.mktemp("big") / "slide.ome.zarr"
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    data = ((yy + xx) % 4000).astype(np.uint16)
    data[1000:1200, 2000:2200] = 60000
    return io.write_ome_zarr(path, data, "yx", "intensity", chunks=(512, 512))


def wheel(window, y, x, notches) -> None:
    viewport = window.canvas.view.viewport()
    pos = QtCore.QPointF(window.canvas.pixel_to_viewport(y, x))
    event = QtGui.QWheelEvent(pos, QtCore.QPointF(viewport.mapToGlobal(pos.toPoint())), QtCore.QPoint(0, 0),
                              QtCore.QPoint(0, 120 * notches), QtCore.Qt.MouseButton.NoButton,
                              QtCore.Qt.KeyboardModifier.NoModifier, QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(viewport, event)


def settled(qtbot, view) -> None:
    """Wait until every tile of the view is loaded and placed."""
    qtbot.waitUntil(lambda: view.settled, timeout=10000)


def open_big(window, path):
    window.session.files.big_slice_bytes = BIG
    window.open_image(path)
    return window.session.current


def zoom_to_level0(window, qtbot, y, x):
    view = window.canvas.big
    for _ in range(30):
        if view.level == 0:
            break
        wheel(window, y, x, 2)
        qtbot.wait(5)
    settled(qtbot, view)
    return view


def test_a_big_ome_zarr_opens_from_its_pyramid_and_zooming_shows_finer_levels(window, qtbot, big_zarr):
    from unet_studio.gui.big_image import is_big

    state = open_big(window, big_zarr)
    assert is_big(state.stack) and state.labels.shape == (1, SIDE, SIDE)
    view = window.canvas.big
    assert view is not None and window.canvas.shape == (SIDE, SIDE)
    settled(qtbot, view)
    source = state.stack.pyramid
    opened_level = view.level
    assert opened_level >= 1  # the whole image in a 1200 x 800 window: a coarse level
    assert all(level > 0 for level, _, _ in source.reads)  # nothing of level 0 was read to open it
    with pytest.raises(Exception, match="too big to read a whole slice"):
        state.stack.get_slice(0)

    wheel(window, 1100, 2100, 3)
    settled(qtbot, view)
    assert view.level < opened_level  # zooming in: a finer level
    view = zoom_to_level0(window, qtbot, 1100, 2100)
    assert view.level == 0 and view.tiles_shown() and all(key[1] == 0 for key in view.tiles_shown())
    level0 = [h * w for level, h, w in source.reads if level == 0]
    assert level0 and max(level0) <= 512 * 512 and sum(level0) < SIDE * SIDE // 4  # only what is in view
    item = view.items[view.tiles_shown()[0]]
    assert item.image.dtype == np.uint16  # the tile's own pixels, not an upscaled overview
    wheel(window, 1100, 2100, -40)
    settled(qtbot, window.canvas.big)
    assert window.canvas.big.level >= opened_level  # zoomed out again: coarse again


def test_painting_a_big_image_writes_its_chunks_and_survives_undo_and_a_restart(window, qtbot, big_zarr, tmp_path):
    from unet_studio.core.labels import ChunkedLabelVolume
    from unet_studio.gui.main_window import MainWindow

    folder = tmp_path / "project"
    assert window.open_project(folder)
    state = open_big(window, big_zarr)
    assert isinstance(state.labels, ChunkedLabelVolume)
    zoom_to_level0(window, qtbot, 3000, 3000)
    window.session.autosaver.set_delays(100)
    window.tools.set_brush_size(5)
    with qtbot.waitSignal(window.session.saved, timeout=10000):
        mouse_stroke(window, [(3000, 2990), (3000, 3010)])
    labels = state.labels.data
    assert labels[0, 3000, 3000] == window.session.active_class + 1
    assert labels[0, 2000, 2000] == 0
    store = folder / "labels" / f"{state.name}_labels.ome.zarr"
    assert store.is_dir() and state.labels.store.chunk_keys() == [(0, 2, 2)]  # one chunk written, not the image
    overlay = window.canvas.big.labels
    assert overlay.image is not None and overlay.image.any()  # the stroke shows

    QTest.keyClick(window, QtCore.Qt.Key.Key_Z, QtCore.Qt.KeyboardModifier.ControlModifier)
    assert labels[0, 3000, 3000] == 0 and not overlay.image.any()
    with qtbot.waitSignal(window.session.saved, timeout=10000):
        QTest.keyClick(window, QtCore.Qt.Key.Key_Z,
                       QtCore.Qt.KeyboardModifier.ControlModifier | QtCore.Qt.KeyboardModifier.ShiftModifier)
    assert labels[0, 3000, 3000] == window.session.active_class + 1  # redone, and saved
    window.close()

    again = MainWindow()
    qtbot.addWidget(again)
    again.resize(1200, 800)
    again.show()
    qtbot.waitExposed(again)
    again.session.files.big_slice_bytes = BIG
    assert again.open_project(folder)
    restored = again.session.current
    assert isinstance(restored.labels, ChunkedLabelVolume)
    assert restored.labels.data[0, 3000, 3000] == again.session.active_class + 1
    assert restored.labels.labelled_slices() == [0]
    assert all(level > 0 for level, _, _ in restored.stack.pyramid.reads)
    settled(qtbot, again.canvas.big)
    overlay = again.canvas.big.labels
    assert overlay.step > 1 and overlay.image.any()  # shown after the restart, zoomed out: a 5 px stroke too
    again.close()


def test_training_on_a_big_image_takes_only_its_painted_regions(window, qtbot, big_zarr):
    from gui_helpers import tiny_configs
    from unet_studio.gui.controllers.training_request import TrainingRequest

    state = open_big(window, big_zarr)
    zoom_to_level0(window, qtbot, 3000, 3000)
    window.tools.set_brush_size(5)
    window.session.set_active_class(0)
    mouse_stroke(window, [(2980, 2980), (2980, 3020)])
    window.session.set_active_class(1)
    mouse_stroke(window, [(3020, 2980), (3020, 3020)])
    window.training.config_hook = lambda m, t: tiny_configs(m, t, epochs=1000)
    request = TrainingRequest(preset="fast", time_limit_s=None, epochs=4)
    with qtbot.waitSignal(window.training.started, timeout=5000):
        window.training_panel.start_requested.emit(request)
    qtbot.waitUntil(lambda: window.training._dataset is not None, timeout=30000)
    labels = window.training._dataset.snapshot()[0]
    # One crop: the two strokes' bounding box and 64 pixels of context around it (never the whole image).
    rows = np.flatnonzero(state.labels.data[0, 2900:3100].any(axis=1)) + 2900
    cols = np.flatnonzero(state.labels.data[0, :, 2900:3100].any(axis=0)) + 2900
    box = (rows[0] - 64, rows[-1] + 65, cols[0] - 64, cols[-1] + 65)
    assert len(labels) == 1 and labels[0].shape == (box[1] - box[0], box[3] - box[2])
    np.testing.assert_array_equal(labels[0], state.labels.data[0, box[0] : box[1], box[2] : box[3]])
    assert {1, 2} <= set(np.unique(labels[0]))
    with qtbot.waitSignal(window.training.finished, timeout=20000):
        window.training.stop()
    window.session.discard_untitled()


@pytest.fixture(scope="module")
def wide_zarr(tmp_path_factory):
    """A 1024 x 1536 uint16 OME-Zarr (big under the tests' threshold) with two bright squares."""
    from unet_studio.core import io

    path = tmp_path_factory.mktemp("wide") / "wide.ome.zarr"
    data = np.full((1024, 1536), 100, np.uint16)
    data[100:200, 100:200] = 5000
    data[700:800, 1300:1400] = 5000
    return io.write_ome_zarr(path, data, "yx", "intensity", chunks=(256, 256))


def test_predict_all_on_a_big_image_runs_blockwise_into_the_project(window, qtbot, wide_zarr, tmp_path):
    from gui_helpers import threshold_model

    assert window.open_project(tmp_path / "project")
    state = open_big(window, wide_zarr)
    threshold_model(window)
    with qtbot.waitSignal(window.prediction.big_predicted, timeout=120000) as blocker:
        window.overlay_panel.predict_all_button.click()
    qtbot.waitUntil(lambda: not window.prediction.is_running(), timeout=10000)
    image_index, labels_path = blocker.args
    assert image_index == 0 and labels_path.endswith(f"predictions/{state.name}_labels.ome.zarr")
    labels = np.asarray(zarr.open_group(labels_path, mode="r")["0"])
    labels = labels.reshape(labels.shape[-2:])
    assert labels.shape == (1024, 1536)
    assert labels[150, 150] == labels[750, 1350] != labels[500, 500]
    assert all(level > 0 for level, _, _ in state.stack.pyramid.reads)  # the window never read level 0 whole
    layer = window.canvas.big_prediction  # the predicted labels over the image, from their own pyramid
    assert layer is not None
    qtbot.waitUntil(lambda: layer.settled, timeout=10000)
    assert layer.items and all(item.zValue() > window.canvas.raw_item.zValue() for item in layer.items.values())
    window.session.set_current(-1)
    window.session.set_current(0)  # shown again (as after a restart): its prediction comes back from the project
    assert window.canvas.big_prediction is not None and window.canvas.big_prediction is not layer


def test_the_cursor_readout_of_a_big_image_reads_a_small_block(window, qtbot, big_zarr):
    state = open_big(window, big_zarr)
    raw = window.session.slices.raw()
    assert raw.shape == (1, SIDE, SIDE) and raw.overview.shape == (1, 256, 256)
    before = len(state.stack.pyramid.reads)
    assert raw[:, 1100, 2100].tolist() == [60000] and raw[:, 1101, 2101].tolist() == [60000]
    assert raw[0, 10, 20:23].tolist() == [30, 31, 32]
    reads = state.stack.pyramid.reads[before:]
    assert reads == [(0, 128, 128), (0, 1, 3)]  # one small block for both cursor pixels, then the row asked for
    raw.max_region_pixels = SIDE * SIDE // 4  # as a 40000 x 40000 slice is to the default bound
    with pytest.raises(Exception, match="too much to read at once"):
        raw[0]  # a whole plane of a big image is never read


def test_choosing_the_metadata_file_of_an_ome_zarr_opens_the_folder(window, qtbot, big_zarr):
    window.choose_files = lambda title: [big_zarr / "zarr.json"]  # what File > Open Image's dialog can pick
    window.session.files.big_slice_bytes = BIG
    window.actions.open_image_dialog()
    assert window.session.current is not None and window.canvas.big is not None
    assert window.canvas.shape == (SIDE, SIDE)
    assert window.session.current.entry.path == big_zarr.resolve() and window.session.current.name == "slide"


def test_images_that_are_not_big_keep_the_in_memory_path(window, qtbot, wide_zarr, sample):
    from unet_studio.gui.big_image import is_big

    window.open_image(wide_zarr)  # 3 MB a slice: under the default threshold
    assert not is_big(window.session.current.stack) and window.canvas.big is None
    assert isinstance(window.session.slices.raw(), np.ndarray)
    assert isinstance(window.session.current.labels.data, np.ndarray)
    assert not isinstance(window.session.current.labels.data, np.memmap)


def test_a_big_tiled_tiff_with_a_pyramid_is_shown_from_it(window, qtbot, tmp_path):
    import tifffile

    from unet_studio.gui.big_image import is_big

    path = tmp_path / "scan.ome.tif"
    data = np.tile(np.arange(2048, dtype=np.uint16), (2048, 1))
    with tifffile.TiffWriter(path, bigtiff=True, ome=True) as tif:
        tif.write(data, tile=(256, 256), subifds=2, metadata={"axes": "YX"})
        tif.write(data[::2, ::2], tile=(256, 256), subfiletype=1)
        tif.write(data[::4, ::4], tile=(256, 256), subfiletype=1)
    state = open_big(window, path)
    assert is_big(state.stack) and window.canvas.big is not None
    view = zoom_to_level0(window, qtbot, 1000, 1000)
    assert view.level == 0 and view.tiles_shown()
    assert max(h * w for level, h, w in state.stack.pyramid.reads if level == 0) <= 512 * 512


@pytest.fixture(scope="module")
def scheduler():
    """A Dask scheduler with one worker, at a tcp address (as dask-jobqueue's would be), for the module."""
    distributed = pytest.importorskip("distributed")
    import asyncio

    from distributed.utils import offload

    asyncio.run(offload(lambda: None))  # distributed's offload thread lives as long as the process: start it first
    # the worker in a process of its own, as on a cluster (and its threads are not this test's)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        yield cluster


def test_predict_all_on_a_big_image_runs_on_the_dask_scheduler_chosen(window, qtbot, wide_zarr, tmp_path,
                                                                       scheduler):
    from gui_helpers import threshold_model

    from unet_studio.gui.main_window import MainWindow

    folder = tmp_path / "project"
    assert window.open_project(folder)
    state = open_big(window, wide_zarr)
    threshold_model(window)
    asked = []
    window.choose_dask_address(get_text=lambda *args: (asked.append(args[-1]), (scheduler.scheduler_address, True))[1])
    assert asked == [""] and window.prediction.dask_address == scheduler.scheduler_address
    transitions = scheduler.scheduler.transition_counter
    with qtbot.waitSignal(window.prediction.big_predicted, timeout=120000) as blocker:
        window.overlay_panel.predict_all_button.click()
    qtbot.waitUntil(lambda: not window.prediction.is_running(), timeout=30000)
    assert scheduler.scheduler.transition_counter > transitions  # the blocks ran on the scheduler's worker
    labels = np.asarray(zarr.open_group(blocker.args[1], mode="r")["0"])
    labels = labels.reshape(labels.shape[-2:])
    assert labels.shape == (1024, 1536) and labels[150, 150] == labels[750, 1350] != labels[500, 500]
    assert state.name in blocker.args[1]

    window.close()  # saves the project, with the choice
    again = MainWindow()
    qtbot.addWidget(again)
    assert again.open_project(folder)
    assert again.prediction.dask_address == scheduler.scheduler_address
    again.close()


def test_a_dask_address_that_is_not_one_is_refused_with_what_to_type(window):
    from unet_studio.gui.big_image.dask_choice import check_dask_address

    assert check_dask_address(" tcp://node12:8786 ") == "tcp://node12:8786"
    assert check_dask_address("node12:8786") == "tcp://node12:8786"
    assert check_dask_address("") == "" and check_dask_address("local") == "local"
    shown = []
    window.show_error = lambda title, text, *rest: shown.append(text)
    window.choose_dask_address(get_text=lambda *args: ("http://node 12", True))
    assert len(shown) == 1 and "not a Dask scheduler address" in shown[0] and "tcp://host:8786" in shown[0]
    assert window.prediction.dask_address == ""  # unchanged


def test_export_and_label_import_on_a_big_image_say_what_to_do_instead(window, qtbot, big_zarr, tmp_path):
    from gui_helpers import threshold_model

    assert window.open_project(tmp_path / "project")
    state = open_big(window, big_zarr)
    threshold_model(window)
    shown = []
    window.show_error = lambda title, text, *rest: shown.append((title, text))
    labels = tmp_path / "labels.tif"
    tifffile.imwrite(labels, np.zeros((SIDE, SIDE), np.uint8))
    reads = len(state.stack.pyramid.reads)
    window.actions.export(tmp_path / "out")
    window.actions.import_labels(labels)
    assert [title for title, _ in shown] == ["Cannot export", "Cannot import labels"]
    assert "Predict all" in shown[0][1] and f"predictions/{state.name}_labels.ome.zarr" in shown[0][1]
    assert "big image" in shown[1][1] and "paint" in shown[1][1]
    assert not window.prediction.is_running() and not (tmp_path / "out").exists()
    assert all(level > 0 or h * w < SIDE * SIDE for level, h, w in state.stack.pyramid.reads[reads:])
