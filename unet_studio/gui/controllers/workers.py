"""Run a core generator in a QThread and forward what it yields as Qt signals.

The pattern is superqt's ``GeneratorWorker``: long work (training, inference, export) is a core generator
that yields progress objects; a :class:`GeneratorWorker` runs it in its own thread, re-emits each item as
``yielded(object)``, and stops it at the next yield when asked. The worker never touches a widget; the
GUI connects to its signals, which Qt delivers on the GUI thread (queued connections).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from typing import ClassVar

from PySide6 import QtCore

from ...core.errors import UNetStudioError

log = logging.getLogger(__name__)


class _GeneratorRunner(QtCore.QObject):
    """Lives in the worker thread: iterates the generator and emits what happens."""

    yielded = QtCore.Signal(object)
    errored = QtCore.Signal(str, str)
    done = QtCore.Signal()

    def __init__(self, make_generator: Callable[[], Iterator]) -> None:
        super().__init__()
        self._make_generator = make_generator
        self._stop = threading.Event()

    def request_stop(self) -> None:
        self._stop.set()

    @QtCore.Slot()
    def run(self) -> None:
        generator = None
        try:
            generator = self._make_generator()
            while not self._stop.is_set():
                try:
                    item = next(generator)
                except StopIteration:
                    break
                self.yielded.emit(item)
        except UNetStudioError as exc:
            # Meant for the person: the message says what and why, no traceback needed.
            self.errored.emit(str(exc), "")
        except Exception as exc:  # noqa: BLE001 - anything else is a bug: keep its traceback
            log.debug("worker generator failed", exc_info=True)
            self.errored.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        finally:
            self._close(generator)
            self.done.emit()

    def _close(self, generator) -> None:
        """Close the generator so that its ``finally`` blocks run in this thread."""
        close = getattr(generator, "close", None)
        if close is None:
            return
        try:
            close()
        except Exception as exc:  # noqa: BLE001 - a failing cleanup must not hide the run's outcome
            self.errored.emit(f"while stopping: {type(exc).__name__}: {exc}", traceback.format_exc())


class GeneratorWorker(QtCore.QObject):
    """Run ``make_generator()`` in its own QThread; re-emit every item it yields.

    Parameters
    ----------
    make_generator : callable
        Called in the worker thread; returns the iterator to run. Give it copies (or read-only views) of
        its inputs, never widgets or objects that the GUI thread changes.
    parent : QObject, optional
        Qt parent of the worker object.

    Signals
    -------
    yielded(object)
        Each item, in order, delivered on the GUI thread.
    errored(str, str)
        ``(message, details)``: for :class:`~unet_studio.core.errors.UNetStudioError` the message is
        its text and details are empty; for anything else the message is ``"Type: text"`` and details
        the traceback.
    finished()
        Always emitted last, once the thread has ended (after ``errored`` too).

    Notes
    -----
    A worker runs once. While it runs, a class-level registry keeps it (and so its QThread) alive even
    when the caller drops its reference: a QThread destroyed while running aborts the process.
    """

    yielded = QtCore.Signal(object)
    errored = QtCore.Signal(str, str)
    finished = QtCore.Signal()

    _running: ClassVar[set[GeneratorWorker]] = set()

    def __init__(self, make_generator: Callable[[], Iterator], parent: QtCore.QObject | None = None) -> None:
        super().__init__(parent)
        self._thread: QtCore.QThread | None = None
        self._runner = _GeneratorRunner(make_generator)
        self._started = False
        self._finished = False

    def start(self) -> None:
        """Start the thread; returns at once. Raises RuntimeError when called a second time."""
        if self._started:
            raise RuntimeError("a GeneratorWorker runs only once; make a new one")
        self._started = True
        thread = QtCore.QThread()
        thread.setObjectName("unet-studio-worker")
        self._thread = thread
        runner = self._runner
        runner.moveToThread(thread)
        runner.yielded.connect(self._on_yielded)
        runner.errored.connect(self._on_errored)
        runner.done.connect(thread.quit, QtCore.Qt.ConnectionType.DirectConnection)
        thread.started.connect(runner.run)
        thread.finished.connect(self._on_thread_finished)
        GeneratorWorker._running.add(self)
        thread.start()

    def stop(self) -> None:
        """Ask the generator to stop at its next yield (it is closed there); never blocks."""
        self._runner.request_stop()

    def is_running(self) -> bool:
        """True from :meth:`start` until ``finished`` has been emitted."""
        return self._started and not self._finished

    def wait(self, ms: int = 5000) -> bool:
        """Block until the thread has ended or ``ms`` milliseconds passed; True when it has ended.

        For tests and application shutdown (after :meth:`stop`); the ``finished`` signal still needs the
        event loop to be delivered.
        """
        if self._thread is None:
            return True
        return self._thread.wait(QtCore.QDeadlineTimer(int(ms)))

    def stop_and_wait(self, ms: int = 30000) -> None:
        """Stop, wait for the thread to end (on application close), and deliver its last signals."""
        self.stop()
        self.wait(ms)
        QtCore.QCoreApplication.sendPostedEvents()

    @QtCore.Slot(object)
    def _on_yielded(self, item: object) -> None:
        self.yielded.emit(item)

    @QtCore.Slot(str, str)
    def _on_errored(self, message: str, details: str) -> None:
        if details:
            log.error("worker failed: %s\n%s", message, details)
        else:
            log.info("worker stopped with an error: %s", message)
        self.errored.emit(message, details)

    @QtCore.Slot()
    def _on_thread_finished(self) -> None:
        if self._finished:
            return
        self._finished = True
        GeneratorWorker._running.discard(self)
        self.finished.emit()
