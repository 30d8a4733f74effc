"""Cyclic garbage collection on the GUI thread only, while a window is open.

Python's cyclic collector runs in whichever thread happens to allocate when a generation's threshold is
crossed: in this application usually a training or prediction worker, which allocates the most. A cycle
that holds a Qt object (a closed dialog, a pyqtgraph item, a lambda connected to a widget's signal) is then
destroyed in that worker, and Qt objects destroyed outside their thread can crash the process. While a
window is open, automatic collection is off and the same generational collection runs from a timer on the
GUI thread (the approach of pyqtgraph's ``GarbageCollector``); when the last window has closed, automatic
collection is on again.
"""

from __future__ import annotations

import gc

from PySide6 import QtCore, QtWidgets

INTERVAL_MS = 500


class _Collector(QtCore.QObject):
    def __init__(self, parent: QtCore.QObject) -> None:
        super().__init__(parent)
        self.users: set[int] = set()
        self.was_enabled = gc.isenabled()
        self.thresholds = gc.get_threshold()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(INTERVAL_MS)
        self.timer.timeout.connect(self.check)

    def check(self) -> None:
        """Collect the generations whose counts passed their thresholds, as the automatic collector would."""
        counts = gc.get_count()
        generation = -1
        for index, (count, threshold) in enumerate(zip(counts, self.thresholds)):
            if threshold <= 0 or count <= threshold:
                break
            generation = index
        if generation >= 0:
            gc.collect(generation)

    def hold(self, key: int) -> None:
        if not self.users:
            self.was_enabled = gc.isenabled()
            self.thresholds = gc.get_threshold()
            gc.disable()
            self.timer.start()
        self.users.add(key)

    def release(self, key: int) -> None:
        if key not in self.users:
            return
        self.users.discard(key)
        if not self.users:
            self.timer.stop()
            gc.collect()  # here, on the GUI thread, what the open window left behind
            if self.was_enabled:
                gc.enable()


_collector: _Collector | None = None


def _the_collector() -> _Collector:
    global _collector
    app = QtWidgets.QApplication.instance()
    if _collector is None or _collector.parent() is not app:
        _collector = _Collector(app)
    return _collector


def collect_on_gui_thread(window: QtWidgets.QWidget) -> None:
    """From now until ``window`` closes (see :func:`window_closed`) or is destroyed, collect cycles only on
    the GUI thread. Call on the GUI thread."""
    key = id(window)
    collector = _the_collector()
    collector.hold(key)
    window.destroyed.connect(lambda *_: collector.release(key))


def window_closed(window: QtWidgets.QWidget) -> None:
    """``window`` has closed for good: automatic collection is back once no other window holds it."""
    if _collector is not None:
        _collector.release(id(window))


def collecting_on_gui_thread() -> bool:
    """Whether automatic collection is off because an open window collects on the GUI thread."""
    return _collector is not None and bool(_collector.users)
