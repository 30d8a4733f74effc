"""Helpers of the application tests: tiny configurations, simulated mouse strokes."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets
from PySide6.QtTest import QTest


def tiny_configs(model_config, train_config, **train_changes):
    """A network and schedule small enough for a test on a 2-core CPU."""
    model = model_config.replace(base_channels=4, depth=2, norm="batch", upsample="bilinear")
    changes = dict(patch_size=32, batch_size=2, epochs=4, steps_per_epoch=10, eval_every=10,
                   preview_every=3, time_limit_s=None, augment=False, amp=False, patience=100,
                   num_threads=1)
    changes.update(train_changes)
    return model, train_config.replace(**changes)


def settle(qtbot, ms: int = 30) -> None:
    qtbot.wait(ms)


def mouse_stroke(window, points, button=QtCore.Qt.MouseButton.LeftButton,
                 modifier=QtCore.Qt.KeyboardModifier.NoModifier) -> None:
    """Press at the first pixel (y, x), move through the others, release at the last: real mouse events."""
    viewport = window.canvas.view.viewport()
    positions = [window.canvas.pixel_to_viewport(y, x) for y, x in points]
    QTest.mousePress(viewport, button, modifier, positions[0])
    for pos in positions[1:]:
        event = QtGui.QMouseEvent(QtCore.QEvent.Type.MouseMove, QtCore.QPointF(pos),
                                  QtCore.QPointF(viewport.mapToGlobal(pos)), QtCore.Qt.MouseButton.NoButton,
                                  button, modifier)
        QtWidgets.QApplication.sendEvent(viewport, event)
    QTest.mouseRelease(viewport, button, modifier, positions[-1])


def paint_two_classes(window) -> None:
    """Paint background and foreground strokes on the visible slice (real mouse events)."""
    window.tools.set_brush_size(7)
    window.session.set_active_class(0)
    mouse_stroke(window, [(30, 30), (30, 200), (200, 200)])
    window.session.set_active_class(1)
    mouse_stroke(window, [(100, 60), (150, 60), (150, 150)])


def labels_of(window, slice_index=None) -> np.ndarray:
    session = window.session
    return session.current.labels.data[session.current_slice if slice_index is None else slice_index]


def threshold_model(window) -> None:
    """Give the window's project a model folder whose network finds the bright nuclei of the bundled sample
    without training (see ``model_helpers.threshold_net``)."""
    from model_helpers import threshold_net

    from unet_studio.core.model import ModelInfo, save_model

    net = threshold_net()
    info = ModelInfo(net.config, [1, 2], [c.name for c in window.session.classes],
                     {"method": "percentile", "low": 1.0, "high": 99.8})
    window.session.ensure_folder()
    save_model(window.session.project.model_dir, net, info)
    window.session.notify_model_changed()


def drop_files(target: QtWidgets.QWidget, pos: QtCore.QPointF, paths) -> None:
    """Drag ``paths`` over ``target`` and drop them at ``pos`` (widget coordinates): real drag events."""
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(path)) for path in paths])
    button, modifier = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier
    enter = QtGui.QDragEnterEvent(pos.toPoint(), QtCore.Qt.DropAction.CopyAction, mime, button, modifier)
    QtWidgets.QApplication.sendEvent(target, enter)
    drop = QtGui.QDropEvent(pos, QtCore.Qt.DropAction.CopyAction, mime, button, modifier)
    QtWidgets.QApplication.sendEvent(target, drop)
