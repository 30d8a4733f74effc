"""The application's responsiveness: brush dabs on a big image, GUI stalls while training, cold start.

All three run the real widgets with ``QT_QPA_PLATFORM=offscreen`` (set here unless already set).

``run_paint`` (``paint_dab_ms_8192``): an 8192x8192 image and label overlay in the real
:class:`~unet_studio.gui.canvas.ImageCanvas` (1200x900 widget, zoomed to a 1024x1024 region as when
painting), one brush dab = :meth:`LabelVolume.paint_disk` (radius 10 px) + ``canvas.update_labels(box)``
+ ``processEvents()``, which runs the paint event Qt scheduled for the invalidated region (pyqtgraph
renders the changed tiles to QImages and draws the items under that region), timed per dab; the figure
is the median. Peer "full-image refresh": the
same canvas with the label overlay as one 8192x8192 ``ImageItem`` that is ``setImage``-d whole after
every dab (what a straightforward overlay does), same dabs, same repaint.

``run_stall`` (``gui_max_stall_ms``): the real main window with ISBI slice 000 open and scribbles painted
(bench/scribbles.py), a 10 ms ``QTimer`` whose tick times are recorded while the application trains
(TrainingController.start with the fast preset, as the Train button does), for a fixed time; the figure
is the longest gap between ticks. Peer "training on the GUI thread": the same training generator
stepped from the event loop (a zero-delay timer per step), the naive way to keep a window "alive".

``run_startup`` (``cold_start_s``): seconds from launching ``python -m unet_studio`` (the bundled sample
image) to the application's own "window visible" report (``UNET_STUDIO_STARTUP_TIMING=quit``, printed
once the first frame with the image is shown), measured by the parent from before ``Popen``; median of
a few launches. Peer (context): ``python -c "import torch"``, the floor of any tool that imports PyTorch
at start-up; the ratio is torch import time / our cold start.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import ROOT, BenchResult, Row, data_dir, median, python_child_env, ratio

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

BIG = 8192
RADIUS = 10.0


def _app():
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench"])


def big_image(size: int = BIG) -> np.ndarray:
    """(1, size, size) uint8: ISBI slice 000 mirrored out to ``size`` (random texture without the data)."""
    path = data_dir() / "isbi2012" / "images" / "000.tif"
    if path.exists():
        import tifffile

        tile = tifffile.imread(path)
    else:
        tile = np.random.default_rng(0).integers(0, 255, (512, 512), dtype=np.uint8)
    block = np.concatenate([tile, tile[::-1]], 0)
    block = np.concatenate([block, block[:, ::-1]], 1)
    reps = -(-size // block.shape[0])
    return np.ascontiguousarray(np.tile(block, (reps, reps))[:size, :size])[None]


def dab_path(n: int, y0: float, x0: float, span: float = 900.0) -> list[tuple[float, float]]:
    """``n`` dab centres along a wavy stroke inside a ``span``-sized region from (y0, x0)."""
    t = np.linspace(0, 1, n)
    ys = y0 + 60 + (span - 120) * t
    xs = x0 + span / 2 + (span / 2 - 80) * np.sin(6 * np.pi * t)
    return list(zip(ys.tolist(), xs.tolist()))


def _make_canvas(raw: np.ndarray, view: tuple[int, int, int]):
    from PySide6 import QtCore

    from unet_studio.gui.canvas import ImageCanvas

    canvas = ImageCanvas()
    canvas.resize(1200, 900)
    canvas.show()
    canvas.set_raw(raw, reset_view=True)
    y0, x0, side = view
    canvas.viewbox.setRange(QtCore.QRectF(x0, y0, side, side), padding=0)
    return canvas


def _settle(app, canvas, rounds: int = 3) -> None:
    for _ in range(rounds):
        app.processEvents()
        canvas.view.viewport().repaint()


def measure_dabs(canvas, volume, points, refresh, app) -> tuple[list[float], list[float]]:
    """Milliseconds per dab: paint_disk + refresh(box) + the event loop's repaint of the dirty region.

    Returns (total per dab, paint + refresh only). ``processEvents`` runs the paint event that Qt
    scheduled for the region the refresh invalidated, as the application's event loop would.
    """
    times, no_repaint = [], []
    volume.begin_stroke(0)
    for i, (y, x) in enumerate(points):
        start = time.perf_counter()
        box = volume.paint_disk(0, y, x, RADIUS, 1 + i % 2)
        if box is not None:
            refresh(box)
        middle = time.perf_counter()
        app.processEvents()
        end = time.perf_counter()
        times.append((end - start) * 1e3)
        no_repaint.append((middle - start) * 1e3)
    volume.end_stroke()
    app.processEvents()
    return times, no_repaint


def run_paint(quick: bool = False) -> BenchResult:
    import pyqtgraph as pg

    from unet_studio.core.labels import LabelVolume
    from unet_studio.gui.canvas import label_lut

    app = _app()
    raw = big_image()
    view = (3584, 3584, 1024)  # a 1024x1024 region in the middle, crossing label tiles
    colors = [(255, 0, 0), (0, 200, 255)]
    n_ours, n_peer = (150, 15) if quick else (400, 40)

    # ours: the real tiled overlay
    canvas = _make_canvas(raw, view)
    volume = LabelVolume(shape=(1, BIG, BIG))
    canvas.set_label_colors(colors)
    canvas.set_labels(volume.data[0])
    _settle(app, canvas)
    points = dab_path(n_ours, view[0], view[1])
    measure_dabs(canvas, volume, points[:10], canvas.update_labels, app)  # warm-up
    ours, ours_no_repaint = measure_dabs(canvas, volume, points, canvas.update_labels, app)
    tiles_per_dab = [canvas.update_labels(volume.paint_disk(0, y, x, RADIUS, 1) or (0, 0, 0, 0))
                     for y, x in points[:20]]
    canvas.close()
    canvas.deleteLater()
    app.processEvents()

    # peer: one ImageItem for the whole overlay, refreshed whole after each dab
    peer_canvas = _make_canvas(raw, view)
    peer_volume = LabelVolume(shape=(1, BIG, BIG))
    lut = label_lut(colors)
    overlay = pg.ImageItem(axisOrder="row-major")
    overlay.setZValue(2)
    overlay.setOpacity(0.6)
    peer_canvas.viewbox.addItem(overlay)

    def full_refresh(_box) -> None:
        overlay.setImage(peer_volume.data[0], lut=lut, levels=(0, 255), autoLevels=False)

    full_refresh(None)
    _settle(app, peer_canvas)
    peer_points = dab_path(n_peer, view[0], view[1])
    measure_dabs(peer_canvas, peer_volume, peer_points[:2], full_refresh, app)  # warm-up
    peer, peer_no_repaint = measure_dabs(peer_canvas, peer_volume, peer_points, full_refresh, app)
    peer_canvas.close()
    peer_canvas.deleteLater()
    app.processEvents()

    # what-if (evidence for canvas.py): one overlay item whose Indexed8 QImage shares memory with the labels
    # (pyqtgraph's uint8 + LUT path is zero-copy), so a dab needs no re-render, only update(rect) of its box.
    zc_ms, zc_visible = _zero_copy_what_if(app, raw, view, colors, dab_path(n_ours, view[0], view[1]))

    ours_ms, peer_ms = median(ours), median(peer)
    rows = [Row("median ms per dab (8192x8192)", ours_ms, peer_ms, "ms"),
            Row("95th percentile ms per dab", float(np.percentile(ours, 95)), float(np.percentile(peer, 95)), "ms"),
            Row("worst dab", max(ours), max(peer), "ms"),
            Row("median of paint_disk + overlay update only", median(ours_no_repaint), median(peer_no_repaint), "ms")]
    notes = [f"radius {RADIUS:g} px dabs along a wavy stroke in a 1024x1024 view of an 8192x8192 image; "
             f"{len(ours)} dabs (ours), {len(peer)} (peer); each dab = paint_disk + overlay refresh + "
             f"the event loop's repaint of the invalidated region (offscreen raster)",
             f"label tiles re-rendered per dab: median {median(tiles_per_dab):.0f}, max {max(tiles_per_dab)}",
             f"what-if, one zero-copy Indexed8 overlay + update(dab box), no re-render: median "
             f"{median(zc_ms):.2f} ms per dab (dabs visible in the shared QImage: {zc_visible})"]
    return BenchResult(name="paint", peer="full-image overlay refresh", ratio=ratio(peer_ms, ours_ms), rows=rows,
                       headline={"paint_dab_ms_8192": ours_ms, "paint_dab_ms_8192_full_refresh": peer_ms,
                                 "paint_dab_ms_8192_what_if_zero_copy": median(zc_ms)},
                       figures={"ours_ms": ours, "peer_ms": peer, "zero_copy_ms": zc_ms, "radius": RADIUS,
                                "view": view, "zero_copy_visible": zc_visible},
                       notes=notes)


def _zero_copy_what_if(app, raw, view, colors, points) -> tuple[list[float], bool]:
    import pyqtgraph as pg
    from PySide6 import QtCore

    from unet_studio.core.labels import LabelVolume
    from unet_studio.gui.canvas import label_lut

    canvas = _make_canvas(raw, view)
    volume = LabelVolume(shape=(1, BIG, BIG))
    overlay = pg.ImageItem(axisOrder="row-major")
    overlay.setZValue(2)
    overlay.setOpacity(0.6)
    canvas.viewbox.addItem(overlay)
    overlay.setImage(volume.data[0], lut=label_lut(colors), levels=(0, 255), autoLevels=False)
    _settle(app, canvas)

    def refresh(box) -> None:
        y0, y1, x0, x1 = box
        overlay.update(QtCore.QRectF(x0, y0, x1 - x0, y1 - y0))

    measure_dabs(canvas, volume, points[:10], refresh, app)
    times, _ = measure_dabs(canvas, volume, points, refresh, app)
    qimage = overlay.qimage
    y, x = points[len(points) // 2]
    visible = bool(qimage is not None and qimage.pixelIndex(int(round(x)), int(round(y))) != 0)
    canvas.close()
    canvas.deleteLater()
    app.processEvents()
    return times, visible


# ----------------------------------------------------------------------------------------------- stall


class TickRecorder:
    """A 10 ms QTimer whose tick times are recorded; ``gaps_ms()`` gives the gaps between ticks."""

    def __init__(self, interval_ms: int = 10) -> None:
        from PySide6 import QtCore

        self.times: list[float] = []
        self.timer = QtCore.QTimer()
        self.timer.setTimerType(QtCore.Qt.TimerType.PreciseTimer)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(lambda: self.times.append(time.perf_counter()))

    def start(self) -> None:
        self.times.clear()
        self.timer.start()

    def stop(self) -> None:
        self.timer.stop()

    def gaps_ms(self) -> np.ndarray:
        return np.diff(np.asarray(self.times)) * 1e3


def _scribbled_window(config_dir: Path):
    """The main window with ISBI slice 000 open and scribbles (from bench/scribbles.py) painted."""
    import tifffile

    from unet_studio.gui.main_window import MainWindow

    os.environ["UNET_STUDIO_CONFIG_DIR"] = str(config_dir)
    window = MainWindow()
    window.resize(1400, 880)
    window.show()
    root = data_dir() / "isbi2012"
    image_path = root / "images" / "000.tif"
    window.open_image(image_path)
    truth = tifffile.imread(root / "labels" / "000.tif")
    try:
        from bench.scribbles import UNLABELLED, scribble_labels

        sparse = scribble_labels(truth, fraction=0.04, seed=0)
        values = np.where(sparse == UNLABELLED, 0, np.where(sparse == 0, 1, 2)).astype(np.uint8)
    except ImportError:  # no scribble script: every 16th row of the ground truth
        values = np.zeros(truth.shape, np.uint8)
        values[::16] = np.where(truth[::16] > 127, 2, 1)
    window.session.editing.set_slice_labels(values)
    return window


def pump(app, seconds: float, until=None) -> None:
    """Run the event loop for ``seconds`` (or until ``until()`` is true), as a person's session would."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        if until is not None and until():
            return
        time.sleep(0.001)


class StallWatcher:
    """A thread that, when the GUI thread's timer has not ticked for ``threshold_ms``, records the stacks
    of all threads (the profile evidence of what a stall is made of). Needs the GIL to run, so a stall
    caused by a thread that holds the GIL is caught just after it lets go, with that thread's stack."""

    def __init__(self, recorder: TickRecorder, threshold_ms: float = 60.0, limit: int = 12) -> None:
        import threading

        self.recorder, self.threshold, self.limit = recorder, threshold_ms / 1e3, limit
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stall-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)

    def _run(self) -> None:
        import threading
        import traceback

        captured_for = None
        gui_ident = threading.main_thread().ident
        while not self._stop.wait(0.005):
            times = self.recorder.times
            if not times:
                continue
            last = times[-1]
            now = time.perf_counter()
            if now - last > self.threshold and captured_for != last and len(self.samples) < self.limit:
                captured_for = last
                names = {t.ident: t.name for t in threading.enumerate()}
                stacks = {}
                for ident, frame in sys._current_frames().items():
                    if ident == threading.get_ident():
                        continue
                    who = "GUI thread" if ident == gui_ident else names.get(ident, f"thread {ident}")
                    lines = [line for line in traceback.format_stack(frame, limit=60) if "<frozen" not in line]
                    stacks[who] = "".join(lines[-8:])
                self.samples.append({"gap_so_far_ms": round((now - last) * 1e3, 1),
                                     "at_s": round(now - self.recorder.times[0], 2), "stacks": stacks})


def measure_training_stall(app, window, seconds: float) -> dict:
    """Press "Train" (as the button does) and record the 10 ms timer until ``seconds`` have passed.

    Every gap from the press on counts (start-up of the worker included); the gaps after the first
    progress report are also reported apart (the steady state of training).
    """
    from PySide6 import QtCore

    from unet_studio.gui.controllers.training_request import TrainingRequest

    recorder = TickRecorder()
    controller = window.training
    progress: list = []
    first = []
    controller.progressed.connect(lambda p: (progress.append(p), first or first.append(time.perf_counter())))
    watcher = StallWatcher(recorder)
    loop = QtCore.QEventLoop()
    recorder.start()
    watcher.start()
    pressed = time.perf_counter()
    controller.start(TrainingRequest("fast", time_limit_s=seconds + 60))
    QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
    recorder.stop()
    watcher.stop()
    steps = progress[-1].step if progress else 0
    controller.stop()
    pump(app, 30, until=lambda: not controller.is_running())
    times = np.asarray(recorder.times)
    gaps = np.diff(times) * 1e3
    first_t = first[0] if first else None
    steady = gaps[times[1:] > first_t + 0.05] if first_t is not None else np.array([])
    start_gaps = gaps[times[1:] <= first_t + 0.05] if first_t is not None else gaps
    top = np.argsort(gaps)[::-1][:5]
    return {"gaps": gaps, "steady_gaps": steady, "start_gaps": start_gaps, "steps": steps,
            "first_progress_s": None if first_t is None else first_t - pressed,
            "top_gaps": [{"ms": round(float(gaps[i]), 1), "at_s": round(float(times[i] - pressed), 2)} for i in top],
            "stall_stacks": watcher.samples,
            "previews": sum(1 for p in progress if getattr(p, "preview", None) is not None),
            "samples_per_s": progress[-1].samples_per_s if progress else None}


def measure_gui_thread_training(app, seconds: float) -> dict:
    """Peer: the same training generator stepped on the GUI thread from a zero-delay timer."""
    from PySide6 import QtCore

    from unet_studio.core import presets
    from unet_studio.core.train import loop as training
    from unet_studio.core.train.data import TrainingSet
    from unet_studio.core.io.stack import normalize_percentile

    import tifffile

    root = data_dir() / "isbi2012"
    image = normalize_percentile(tifffile.imread(root / "images" / "000.tif")[None].astype(np.float32))
    truth = tifffile.imread(root / "labels" / "000.tif")
    labels = np.zeros(truth.shape, np.int64)
    labels[::16] = np.where(truth[::16] > 127, 2, 1)
    model_config, train_config = presets.preset_configs("fast", 1, 2)
    dataset = TrainingSet([image], [labels], 2)
    run = training.train(dataset, model_config, train_config.replace(time_limit_s=seconds + 60))
    recorder = TickRecorder()
    steps = [0]

    def step() -> None:
        try:
            next(run)
            steps[0] += 1
        except StopIteration:
            return
        stepper.start()

    stepper = QtCore.QTimer()
    stepper.setSingleShot(True)
    stepper.setInterval(0)
    stepper.timeout.connect(step)
    next(run)  # first step (builds everything) outside the measurement
    recorder.start()
    stepper.start()
    loop = QtCore.QEventLoop()
    QtCore.QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
    stepper.stop()
    recorder.stop()
    run.close()
    return {"gaps": recorder.gaps_ms(), "steps": steps[0]}


def run_stall(quick: bool = False) -> BenchResult:
    app = _app()
    seconds = 30.0 if quick else 75.0
    with tempfile.TemporaryDirectory(prefix="unet-bench-gui-") as tmp:
        window = _scribbled_window(Path(tmp))
        # As `unet-studio` does one second after its window appears: import and exercise PyTorch in a
        # background thread, so that pressing Train does not pay for the imports on the GIL.
        window.preload_compute_modules(0)
        pump(app, 120.0, until=lambda: window.warm_up.thread is not None and not window.warm_up.thread.is_alive())
        pump(app, 0.5)
        idle = TickRecorder()
        idle.start()
        pump(app, 2.0)
        idle.stop()
        ours = measure_training_stall(app, window, seconds)
        # A second press of Train in the same session: PyTorch and the core are imported already.
        again = measure_training_stall(app, window, seconds / 2)
        window.session.discard_untitled()
        window.close()
        window.deleteLater()
        pump(app, 0.5)
    peer = measure_gui_thread_training(app, 8.0 if quick else 20.0)
    gaps, steady, peer_gaps, idle_gaps = ours["gaps"], ours["steady_gaps"], peer["gaps"], idle.gaps_ms()

    def top(values):
        return float(values.max()) if len(values) else None

    ours_max, peer_max = top(gaps), top(peer_gaps)
    rows = [Row("longest gap between 10 ms ticks (from pressing Train)", ours_max, peer_max, "ms"),
            Row("longest gap once training steps run", top(steady), peer_max, "ms"),
            Row("longest gap while the worker starts", top(ours["start_gaps"]), None, "ms"),
            Row("longest gap, second Train press (torch loaded)", top(again["gaps"]), None, "ms"),
            Row("99th percentile gap", float(np.percentile(gaps, 99)) if len(gaps) else None,
                float(np.percentile(peer_gaps, 99)) if len(peer_gaps) else None, "ms"),
            Row("gaps over 50 ms", float((gaps > 50).sum()), float((peer_gaps > 50).sum()), "")]
    first = ours["first_progress_s"]
    notes = [f"main window, ISBI slice 000 with scribbles, fast preset; {seconds:g} s from pressing Train "
             f"(first progress after {first if first is None else round(first, 1)} s); {ours['steps']} training "
             f"steps, {ours['previews']} previews shown",
             "largest gaps (ms at s after pressing Train): "
             + ", ".join(f"{g['ms']:.0f} @ {g['at_s']:.1f}" for g in ours["top_gaps"]),
             f"idle window, no training: longest gap {top(idle_gaps) or float('nan'):.1f} ms",
             f"peer: {peer['steps']} steps on the GUI thread"]
    return BenchResult(name="stall", peer="training on the GUI thread", ratio=ratio(peer_max, ours_max), rows=rows,
                       headline={"gui_max_stall_ms": ours_max, "gui_max_stall_ms_steady": top(steady),
                                 "gui_max_stall_ms_second_train": top(again["gaps"]),
                                 "gui_max_stall_ms_gui_thread_training": peer_max},
                       figures={"gaps_over_20ms": [round(float(g), 1) for g in gaps[gaps > 20]],
                                "top_gaps": ours["top_gaps"], "stall_stacks": ours["stall_stacks"],
                                "second_train_top_gaps": again["top_gaps"],
                                "second_train_stall_stacks": again["stall_stacks"],
                                "ticks": int(len(gaps)), "first_progress_s": first, "steps": ours["steps"],
                                "previews": ours["previews"], "samples_per_s": ours["samples_per_s"],
                                "idle_max_ms": top(idle_gaps), "peer_steps": peer["steps"]},
                       notes=notes)


# ----------------------------------------------------------------------------------------------- startup


def time_app_start(timeout: float = 60.0) -> float:
    """Seconds from launching the application to its 'window visible' report."""
    with tempfile.TemporaryDirectory(prefix="unet-bench-start-") as tmp:
        env = python_child_env(UNET_STUDIO_STARTUP_TIMING="quit", QT_QPA_PLATFORM="offscreen",
                               UNET_STUDIO_CONFIG_DIR=tmp)
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "unet_studio"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)
        seen = None
        try:
            for line in proc.stderr:
                if "window visible" in line:
                    seen = time.perf_counter() - start
                    break
            proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if seen is None:
            raise RuntimeError(f"the application did not report a visible window (status {proc.returncode}); "
                               "is UNET_STUDIO_STARTUP_TIMING supported by unet_studio/gui/app.py?")
        return seen


def time_python(code: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env=python_child_env(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def run_startup(quick: bool = False) -> BenchResult:
    repeats = 3 if quick else 7
    time_app_start()  # first launch fills the OS file cache (a "warm" cold start, as on a second launch)
    ours = [time_app_start() for _ in range(repeats)]
    torch_import = [time_python("import torch") for _ in range(repeats)]
    bare = [time_python("pass") for _ in range(repeats)]
    qt_import = [time_python("from PySide6 import QtWidgets; import pyqtgraph") for _ in range(repeats)]
    ours_s, torch_s = median(ours), median(torch_import)
    rows = [Row("seconds to window shown with the image", ours_s, None, "s"),
            Row("python -c 'import torch'", None, torch_s, "s"),
            Row("python -c 'import PySide6.QtWidgets, pyqtgraph'", median(qt_import), None, "s"),
            Row("python -c pass", median(bare), None, "s")]
    notes = [f"median of {repeats} launches of `python -m unet_studio` (bundled sample image, offscreen) after one "
             "untimed launch; measured from before Popen to the app's 'window visible' line on stderr",
             "peer is context: PyTorch's import alone; ratio = torch import time / our start"]
    return BenchResult(name="startup", peer="python -c 'import torch'", ratio=ratio(torch_s, ours_s), rows=rows,
                       headline={"cold_start_s": ours_s, "cold_start_import_torch_s": torch_s},
                       figures={"ours_s": ours, "import_torch_s": torch_import, "python_pass_s": bare,
                                "import_qt_pyqtgraph_s": qt_import}, notes=notes)
