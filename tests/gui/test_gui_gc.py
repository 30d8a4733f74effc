"""Cycles are collected on the GUI thread while a window is open, never in a worker (see gui_gc)."""

from __future__ import annotations

import gc
import threading
import weakref

from PySide6 import QtCore

from unet_studio.gui.gui_gc import collecting_on_gui_thread


def _garbage_made_in_a_worker(died_in: list[str]) -> None:
    class Node:
        pass

    def make() -> None:
        node = Node()
        node.me = node
        node.timer = QtCore.QTimer()  # a Qt object in the cycle, as a closed dialog's would be
        weakref.finalize(node, lambda: died_in.append(threading.current_thread().name))
        del node
        for _ in range(50000):  # far past every generation's threshold
            junk: list = []
            junk.append(junk)

    worker = threading.Thread(target=make, name="worker")
    worker.start()
    worker.join()


def test_cycles_die_on_the_gui_thread_while_a_window_is_open(window, qtbot):
    assert collecting_on_gui_thread() and not gc.isenabled()
    died_in: list[str] = []
    _garbage_made_in_a_worker(died_in)
    assert died_in == []  # the worker crossed the thresholds and collected nothing
    qtbot.waitUntil(lambda: bool(died_in), timeout=5000)
    assert died_in == [threading.main_thread().name]


def test_automatic_collection_is_back_when_the_window_closes(window):
    window.close()
    assert not collecting_on_gui_thread() and gc.isenabled()
    died_in: list[str] = []
    _garbage_made_in_a_worker(died_in)
    assert died_in == ["worker"]
