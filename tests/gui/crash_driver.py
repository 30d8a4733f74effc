"""A child process for the crash tests: the real application, painting or training until it is killed.

    python crash_driver.py paint PROJECT|untitled LOG --first K [--image IMAGE] [--autosave-ms MS --max-delay-ms MS]
    python crash_driver.py train PROJECT LOG [--resume]

It starts the application through ``unet_studio.gui.app.main`` (the code behind ``unet-studio
--project PROJECT``), then works through the window the way a person does, and appends one line per
event to LOG (``EVENT VALUE TIME``; each line one ``os.write`` on an O_APPEND file, so a kill never
leaves half a line):

- ``opened N`` once the project is open, with N = 1 when the window showed the crash notice;
- paint: stroke K goes through real mouse events on the canvas (press, moves, release, one event per
  event-loop turn, so a kill can land inside a stroke); ``stroke K`` when it is released,
  ``snapshot K`` when an autosave copies the labels (K = strokes completed by then) and ``saved K``
  when that autosave is on disk;
- train: clicks Train (a tiny network; with --resume, "continue from current model" is ticked) and
  logs ``progress STEP`` for each report, ``model STEP`` when a report says that a model was written.

The parent kills it with SIGKILL; nothing here ever ends on its own. Stroke K paints the centre of
cell K of a grid of CELL x CELL pixel cells, with class 1 + K % 2: :func:`stroke_cell` tells the test
where to look.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

CELL = 8
BRUSH = 5
UNTITLED = "untitled"  # as PROJECT: open --image in an untitled project, like `unet-studio IMAGE`


def stroke_cell(k: int, width: int = 512) -> tuple[int, int, int]:
    """(y, x, value) of the centre of stroke ``k``: the pixel that the stroke certainly paints."""
    per_row = width // CELL
    return CELL * (k // per_row) + CELL // 2, CELL * (k % per_row) + CELL // 2, 1 + k % 2


class Log:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def __call__(self, event: str, value: int) -> None:
        os.write(self.fd, f"{event} {value} {time.time():.6f}\n".encode())


def _window():
    from PySide6 import QtWidgets

    from unet_studio.gui.main_window import MainWindow

    return next(w for w in QtWidgets.QApplication.topLevelWidgets() if isinstance(w, MainWindow))


class Painter:
    """Strokes through real mouse events, one event per timer tick."""

    def __init__(self, window, log: Log, first: int) -> None:
        from PySide6 import QtCore

        self.window, self.log, self.k = window, log, first
        self.completed = first
        self.events = self._events()
        session = window.session
        self.in_snapshot = -1
        session.about_to_save.connect(self._on_snapshot)
        session.saved.connect(lambda _where: log("saved", self.in_snapshot))
        window.tools.set_tool("brush")
        window.tools.set_brush_size(BRUSH)
        self.timer = QtCore.QTimer(window)
        self.timer.setInterval(2)
        self.timer.timeout.connect(lambda: next(self.events, None))
        self.timer.start()

    def _on_snapshot(self) -> None:
        self.in_snapshot = self.completed
        self.log("snapshot", self.completed)

    def _events(self):
        from PySide6 import QtCore, QtGui, QtWidgets
        from PySide6.QtTest import QTest

        button, none = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier
        viewport = self.window.canvas.view.viewport()
        width = self.window.session.current.labels.shape[2]
        while stroke_cell(self.k, width)[0] < self.window.session.current.labels.shape[1] - CELL:
            y, x, value = stroke_cell(self.k, width)
            self.window.session.set_active_class(value - 1)
            points = [self.window.canvas.pixel_to_viewport(y, x + dx) for dx in (-2, -1, 0, 1, 2)]
            QTest.mousePress(viewport, button, none, points[0])
            yield
            for pos in points[1:]:
                event = QtGui.QMouseEvent(QtCore.QEvent.Type.MouseMove, QtCore.QPointF(pos),
                                          QtCore.QPointF(viewport.mapToGlobal(pos)),
                                          QtCore.Qt.MouseButton.NoButton, button, none)
                QtWidgets.QApplication.sendEvent(viewport, event)
                yield
            QTest.mouseRelease(viewport, button, none, points[-1])
            self.log("stroke", self.k)
            self.k += 1
            self.completed = self.k
            yield


def start_painting(args, log: Log) -> None:
    window = _window()
    log("opened", int(_crash_notice_shown(window)))
    session = window.session
    session.autosaver.set_delays(args.autosave_ms, args.max_delay_ms)
    window.painter = Painter(window, log, args.first)


def start_training(args, log: Log) -> None:
    window = _window()
    log("opened", int(_crash_notice_shown(window)))

    def tiny(model_config, train_config):
        model = model_config.replace(base_channels=4, depth=2, norm="batch", upsample="bilinear")
        return model, train_config.replace(patch_size=32, batch_size=2, epochs=10000, steps_per_epoch=10,
                                           eval_every=2, preview_every=0, time_limit_s=None, augment=False,
                                           amp=False, patience=10**6, num_threads=1, val_fraction=0.0)

    def on_progress(progress) -> None:
        log("progress", progress.step)
        if progress.model_dir is not None:
            log("model", progress.step)

    window.training.config_hook = tiny
    window.training.progressed.connect(on_progress)
    window.training.failed.connect(lambda message, _details: log("failed:" + "_".join(message.split()), 0))
    panel = window.training_panel
    panel.set_settings(dataclasses.replace(panel.settings(), continue_training=args.resume))
    panel.train_button.click()


def _crash_notice_shown(window) -> bool:
    return window.last_error is not None and window.last_error[0] == "UNet Studio did not close cleanly"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("paint", "train"))
    parser.add_argument("project")
    parser.add_argument("log")
    parser.add_argument("--image")
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--autosave-ms", type=int, default=2000)
    parser.add_argument("--max-delay-ms", type=int, default=5000)
    parser.add_argument("--resume", action="store_true", help="train: continue from the project's model")
    args = parser.parse_args()
    from PySide6 import QtCore, QtWidgets

    from unet_studio.gui.app import main as app_main
    from unet_studio.gui.main_window import MainWindow

    if args.mode == "paint":
        # Painting needs no PyTorch: skip the warm-up import, whose CPU load on a small shared machine
        # would pause the strokes (and a pause longer than the autosave delay lets the timer fire).
        MainWindow.preload_compute_modules = lambda self, delay_ms=1000: None
    app = QtWidgets.QApplication(sys.argv[:1])  # noqa: F841 - app_main finds it through instance()
    log = Log(args.log)
    start = start_painting if args.mode == "paint" else start_training
    QtCore.QTimer.singleShot(0, lambda: start(args, log))
    return app_main(image=args.image, project=None if args.project == UNTITLED else args.project)


if __name__ == "__main__":
    sys.exit(main())
