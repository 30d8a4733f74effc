"""GeneratorWorker: yields as signals, stop, errors, clean thread shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from unet_studio.core.errors import TrainingError
from unet_studio.gui.controllers.workers import GeneratorWorker


@pytest.fixture
def make_worker(qtbot):
    """Build workers and make sure each one has ended when the test ends."""
    workers = []

    def make(factory):
        worker = GeneratorWorker(factory)
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()
        assert worker.wait(5000), "worker thread still running"
        if worker.is_running():
            qtbot.waitUntil(lambda w=worker: not w.is_running(), timeout=2000)


def test_yields_arrive_in_order_on_the_gui_thread(qtbot, make_worker):
    gui_thread = threading.get_ident()
    worker_threads = []

    def count():
        worker_threads.append(threading.get_ident())
        yield from range(20)

    worker = make_worker(count)
    received, threads = [], []
    worker.yielded.connect(lambda item: (received.append(item), threads.append(threading.get_ident())))
    errors = []
    worker.errored.connect(lambda *args: errors.append(args))
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
        assert worker.is_running()
    assert received == list(range(20))
    assert set(threads) == {gui_thread}
    assert worker_threads and worker_threads[0] != gui_thread
    assert not errors
    assert not worker.is_running()
    assert worker.wait(1000)


def test_stop_midway_closes_the_generator_and_finishes_quickly(qtbot, make_worker):
    state = {"closed": False, "produced": 0}

    def endless():
        try:
            while True:
                state["produced"] += 1
                yield state["produced"]
                time.sleep(0.01)
        finally:
            state["closed"] = True

    worker = make_worker(endless)
    received = []
    worker.yielded.connect(received.append)
    with qtbot.waitSignal(worker.yielded, timeout=5000):
        worker.start()
    qtbot.waitUntil(lambda: len(received) >= 3, timeout=5000)
    with qtbot.waitSignal(worker.finished, timeout=10000):  # a worker that ignores stop() fails here
        worker.stop()
    assert state["closed"]
    assert received == list(range(1, len(received) + 1))
    assert state["produced"] <= len(received) + 1
    assert not worker.is_running()


def test_exception_arrives_via_errored_then_finished(qtbot, make_worker):
    state = {"closed": False}

    def failing():
        try:
            yield 1
            raise ValueError("bad pixel size")
        finally:
            state["closed"] = True

    worker = make_worker(failing)
    events = []
    worker.yielded.connect(lambda item: events.append(("yielded", item)))
    worker.errored.connect(lambda message, details: events.append(("errored", message, details)))
    worker.finished.connect(lambda: events.append(("finished",)))
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    assert [event[0] for event in events] == ["yielded", "errored", "finished"]
    _, message, details = events[1]
    assert message == "ValueError: bad pixel size"
    assert "Traceback" in details and "failing" in details
    assert state["closed"]


def test_unet_studio_error_message_passes_through_clean(qtbot, make_worker):
    def nan_loss():
        yield "step"
        raise TrainingError("loss became NaN at step 12; kept the model of step 10")

    worker = make_worker(nan_loss)
    with qtbot.waitSignal(worker.errored, timeout=5000) as blocker:
        worker.start()
    assert blocker.args == ["loss became NaN at step 12; kept the model of step 10", ""]
    qtbot.waitUntil(lambda: not worker.is_running(), timeout=2000)


def test_error_while_creating_the_generator_is_reported(qtbot, make_worker):
    def factory():
        raise TrainingError("no labelled pixels: paint some labels first")

    worker = make_worker(factory)
    with qtbot.waitSignals([worker.errored, worker.finished], order="strict", timeout=5000):
        worker.start()


def test_worker_runs_only_once_and_wait_before_start(qtbot, make_worker):
    worker = make_worker(lambda: iter(()))
    assert worker.wait(10)
    assert not worker.is_running()
    with qtbot.waitSignal(worker.finished, timeout=5000):
        worker.start()
    with pytest.raises(RuntimeError):
        worker.start()
