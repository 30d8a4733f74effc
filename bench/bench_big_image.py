"""The application on an image bigger than memory: opening time, and GUI stalls while panning and zooming.

``run_big_image`` writes a SIZE x SIZE uint16 OME-Zarr (40000 by default; chunks of 512, a pyramid down
to 256 px, written band by band: never whole in memory), then, in the real main window (1400 x 880,
``QT_QPA_PLATFORM=offscreen``):

- ``big_open_s``: seconds from ``window.open_image(path)`` to the first view of it settled (the level that
  fits the view placed, every wanted tile loaded);
- ``big_pan_zoom_max_stall_ms``: a 10 ms ``QTimer`` records its tick times (as ``bench_gui.run_stall``
  does) while a fixed script zooms in with wheel events (down to level 0), pans the view box in steps of a
  third of the view, zooms out again, and the event loop runs between steps; the figure is the longest gap
  between ticks. A tile read never runs on the GUI thread: the gaps are drawing and bookkeeping.

Peer: the application's in-memory path (the path of every image that fits) on a PEER x PEER uint16 TIFF
(8192 by default), the same window and the same script: its opening time and its longest stall. The
ratios printed are peer / ours (above 1: the big image opens, or moves, faster than the in-memory path
does with a far smaller image).

Run: ``python -m bench.bench_big_image [--size 40000] [--peer 8192] [--folder DIR]`` (``--size 4096 --peer
2048`` for a quick check). The OME-Zarr is kept in ``--folder`` and reused by the next run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import BenchResult, Row, ratio
from bench.bench_gui import pump

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
log = logging.getLogger(__name__)

SIZE = 40000
PEER = 8192
BAND = 2048


def texture(y0: int, y1: int, width: int) -> np.ndarray:
    """Rows y0..y1 of a deterministic uint16 texture (blobs on a gradient), made band by band."""
    yy, xx = np.mgrid[y0:y1, 0:width].astype(np.float32)
    blobs = (np.sin(yy / 37.0) * np.cos(xx / 29.0) > 0.6) * 20000.0
    return (1000.0 + (yy + xx) % 4096 * 4 + blobs).astype(np.uint16)


def write_big(path: Path, size: int) -> Path:
    """A size x size uint16 OME-Zarr with its pyramid, written band by band (kept when it exists)."""
    from unet_studio.core import io

    if (path / "zarr.json").is_file() or (path / ".zattrs").is_file():
        return path
    level0 = io.create_ome_zarr(path, (size, size), np.uint16, (512, 512), "yx")
    for y0 in range(0, size, BAND):
        y1 = min(size, y0 + BAND)
        level0[y0:y1, :] = texture(y0, y1, size)
    io.build_pyramid(path, "intensity")
    return path


def write_peer(path: Path, size: int) -> Path:
    import tifffile

    if not path.is_file():
        tifffile.imwrite(path, texture(0, size, size))
    return path


def _app():
    from PySide6 import QtWidgets

    return QtWidgets.QApplication.instance() or QtWidgets.QApplication(["bench"])


def _wheel(window, notches: int) -> None:
    from PySide6 import QtCore, QtGui, QtWidgets

    viewport = window.canvas.view.viewport()
    pos = QtCore.QPointF(viewport.width() / 2, viewport.height() / 2)
    event = QtGui.QWheelEvent(pos, QtCore.QPointF(viewport.mapToGlobal(pos.toPoint())), QtCore.QPoint(0, 0),
                              QtCore.QPoint(0, 120 * notches), QtCore.Qt.MouseButton.NoButton,
                              QtCore.Qt.KeyboardModifier.NoModifier, QtCore.Qt.ScrollPhase.NoScrollPhase, False)
    QtWidgets.QApplication.sendEvent(viewport, event)


def _settled(window) -> bool:
    big = window.canvas.big
    return big is None or big.settled


def script(app, window, step_s: float = 0.12) -> None:
    """Zoom in 12 notches, pan 8 steps right and 8 down, zoom out 12 notches: the event loop runs between."""
    viewbox = window.canvas.viewbox
    for _ in range(12):
        _wheel(window, 1)
        pump(app, step_s)
    for dx, dy in [(1, 0)] * 8 + [(0, 1)] * 8:
        (x0, x1), (y0, y1) = viewbox.viewRange()
        viewbox.translateBy(x=dx * (x1 - x0) / 3, y=dy * (y1 - y0) / 3)
        pump(app, step_s)
    for _ in range(12):
        _wheel(window, -1)
        pump(app, step_s)


def _window(app, big_slice_bytes: int | None):
    from unet_studio.gui.main_window import MainWindow

    window = MainWindow()
    window.resize(1400, 880)
    window.show()
    pump(app, 0.5)
    if big_slice_bytes is not None:
        window.session.files.big_slice_bytes = big_slice_bytes
    return window


def paint_and_restart(app, window, project: Path, big_slice_bytes: int | None) -> dict:
    """Paint 60 dabs at full resolution (timed, with the repaint), save, close, open the project again."""
    session, canvas = window.session, window.canvas
    height, width = canvas.shape
    cy, cx = height // 2, width // 2
    canvas.viewbox.setRange(xRange=(cx - 400, cx + 400), yRange=(cy - 250, cy + 250), padding=0)
    pump(app, 10.0, lambda: _settled(window))
    times, value = [], session.active_class + 1
    session.editing.begin_stroke()
    previous = (cy, cx - 300)
    for k in range(60):
        point = (cy + 100 * np.sin(k / 6.0), cx - 300 + 10 * k)
        start = time.perf_counter()
        session.editing.paint_line(previous, point, 8.0, value)
        app.processEvents()
        times.append((time.perf_counter() - start) * 1e3)
        previous = point
    session.editing.end_stroke()
    py, px = int(round(previous[0])), int(round(previous[1]))
    painted = int(session.current.labels.data[0, py, px])
    window.session.save_now()
    window.close()
    pump(app, 0.2)
    again = _window(app, big_slice_bytes)
    start = time.perf_counter()
    again.open_project(project)
    pump(app, 30.0, lambda: _settled(again))
    reopened = time.perf_counter() - start
    kept = int(again.session.current.labels.data[0, py, px]) == painted != 0
    again.close()
    pump(app, 0.2)
    return {"paint_dab_ms": float(np.median(times)), "paint_dab_max_ms": float(max(times)),
            "reopen_s": reopened, "painting_survives_restart": bool(kept)}


def measure(app, path: Path, big_slice_bytes: int | None, project: Path) -> dict:
    """Open ``path`` in a fresh main window, time it, then run the pan/zoom script under a tick recorder,
    then paint, save, close and open the project again."""
    from bench.bench_gui import StallWatcher, TickRecorder

    window = _window(app, big_slice_bytes)
    window.open_project(project)
    start = time.perf_counter()
    window.open_image(path)
    opened = time.perf_counter() - start
    pump(app, 30.0, lambda: _settled(window))
    shown = time.perf_counter() - start
    recorder = TickRecorder()
    watcher = StallWatcher(recorder, threshold_ms=60.0)
    recorder.start()
    watcher.start()
    script(app, window)
    pump(app, 0.3)
    recorder.stop()
    watcher.stop()
    gaps = recorder.gaps_ms()
    big = window.canvas.big
    result = {"open_call_s": opened, "open_s": shown, "max_stall_ms": float(gaps.max()) if gaps.size else 0.0,
              "p99_gap_ms": float(np.percentile(gaps, 99)) if gaps.size else 0.0,
              "big": big is not None, "stall_stacks": watcher.samples,
              "level0_read_px": sum(h * w for level, h, w in big.source.reads if level == 0) if big else None}
    result.update(paint_and_restart(app, window, project, big_slice_bytes))
    return result


def run_big_image(quick: bool = False, size: int | None = None, peer: int | None = None,
                  folder: Path | None = None) -> BenchResult:
    size = size or (8192 if quick else SIZE)
    peer = peer or (2048 if quick else PEER)
    folder = Path(folder or tempfile.mkdtemp(prefix="bench-big-"))
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("UNET_STUDIO_CONFIG_DIR", str(folder / "config"))
    start = time.perf_counter()
    big_path = write_big(folder / f"big_{size}.ome.zarr", size)
    written = time.perf_counter() - start
    peer_path = write_peer(folder / f"peer_{peer}.tif", peer)
    app = _app()
    # A slice of the big image is big whatever its size here (a quick run uses a small one).
    limit = min(64 * 2**20, size * size * 2 - 1)
    stamp = time.strftime("%H%M%S")
    ours = measure(app, big_path, limit, folder / f"project-big-{stamp}")
    theirs = measure(app, peer_path, None, folder / f"project-peer-{stamp}")
    rows = [Row(f"open {size}x{size} uint16 OME-Zarr (ours) vs {peer}x{peer} TIFF in memory (peer)",
                ours["open_s"], theirs["open_s"], "s"),
            Row("longest GUI stall while zooming and panning", ours["max_stall_ms"], theirs["max_stall_ms"], "ms"),
            Row("99th percentile tick gap", ours["p99_gap_ms"], theirs["p99_gap_ms"], "ms"),
            Row("brush dab (radius 8) with its repaint, median", ours["paint_dab_ms"], theirs["paint_dab_ms"], "ms"),
            Row("open the project again (painting shown)", ours["reopen_s"], theirs["reopen_s"], "s")]
    return BenchResult(
        name="big_image", peer=f"in-memory path on a {peer}x{peer} image", ratio=ratio(theirs["open_s"], ours["open_s"]),
        rows=rows, headline={"big_open_s": ours["open_s"], "big_pan_zoom_max_stall_ms": ours["max_stall_ms"],
                             "big_painting_survives_restart": float(ours["painting_survives_restart"])},
        figures={"ours": ours, "peer": theirs, "size": size, "peer_size": peer, "write_s": written,
                 "stall_ratio_peer_over_ours": ratio(theirs["max_stall_ms"], ours["max_stall_ms"])},
        notes=[f"written in {written:.1f} s into {big_path}", "ticks of a 10 ms QTimer, as bench_gui.run_stall"])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=SIZE)
    parser.add_argument("--peer", type=int, default=PEER)
    parser.add_argument("--folder", type=Path, default=None, help="where the images are written (and reused)")
    args = parser.parse_args(argv)
    result = run_big_image(size=args.size, peer=args.peer, folder=args.folder)
    for row in result.rows:
        print(f"{row.what}: ours {row.ours:.3f} {row.unit}, peer {row.peer:.3f} {row.unit}, "
              f"peer/ours {ratio(row.peer, row.ours) or float('nan'):.2f}")
    print(f"painting survives a restart: {result.figures['ours']['painting_survives_restart']}")
    print(f"level-0 pixels read by the window: {result.figures['ours']['level0_read_px']} "
          f"(the image has {args.size * args.size})")
    for note in result.notes:
        print(note)
    for sample in result.figures["ours"]["stall_stacks"][:3]:  # what the GUI thread did in the longest gaps
        print(f"gap over {sample['gap_so_far_ms']} ms at {sample['at_s']} s; GUI thread:\n"
              f"{sample['stacks'].get('GUI thread', '?')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
