"""Training from the main window: live previews, stop, errors, and the event loop stays responsive."""

from __future__ import annotations

import time

import numpy as np
from PySide6 import QtCore

from gui_helpers import labels_of, mouse_stroke, paint_two_classes, tiny_configs
from unet_studio.gui.controllers.training_request import TrainingRequest


def _start(window, qtbot, **options):
    request = TrainingRequest(**{"preset": "fast", "time_limit_s": None, "epochs": 4, **options})
    with qtbot.waitSignal(window.training.started, timeout=5000):
        window.training_panel.start_requested.emit(request)


def test_training_shows_live_previews_and_saves_a_model(window, qtbot, sample_512):
    window.open_image(sample_512)
    paint_two_classes(window)
    assert window.canvas.prediction_item.image is None
    window.training_panel.train_button.click()
    assert window.training_panel.is_running()
    with qtbot.waitSignal(window.training.preview_shown, timeout=60000) as blocker:
        pass
    assert blocker.args == [0, 0]
    first = window.canvas.prediction_item.image.copy()
    assert first.shape == (512, 512) and window.canvas.prediction_item.isVisible()
    with qtbot.waitSignal(window.training.finished, timeout=120000):
        pass
    assert not window.training_panel.is_running()
    assert window.session.model_dir is not None and (window.session.model_dir / "model.json").is_file()
    assert not np.array_equal(first, window.canvas.prediction_item.image)  # later previews changed it
    assert window.training_panel.device_label.text() not in ("", "Device: -")  # "CPU (n threads)" or the GPU
    assert window.training_panel.progress_bar.value() == window.training_panel.progress_bar.maximum()
    assert window.training_panel.continue_available()
    window.session.discard_untitled()


def test_stop_training_midway_keeps_the_best_model(window, qtbot, sample_512):
    window.open_image(sample_512)
    paint_two_classes(window)
    window.training.config_hook = lambda m, t: tiny_configs(m, t, epochs=1000, steps_per_epoch=10)
    _start(window, qtbot)
    with qtbot.waitSignal(window.training.progressed, timeout=30000,
                          check_params_cb=lambda p: p.step >= 12):
        pass
    started = time.perf_counter()
    with qtbot.waitSignal(window.training.finished, timeout=10000) as blocker:
        window.training_panel.train_button.click()  # the button reads "Stop" while running
    stop_s = time.perf_counter() - started
    # Stop is measured by the stall benchmark; here only a Stop that never takes effect fails (the wait above).
    print(f"\nstop took {stop_s:.2f} s")
    assert blocker.args == [True]
    assert (window.session.model_dir / "model.json").is_file()
    assert window.training_panel.train_button.text() == "Train"
    window.session.discard_untitled()


def test_labels_painted_during_training_reach_the_training_set(window, qtbot, sample_512):
    window.open_image(sample_512)
    paint_two_classes(window)
    window.training.config_hook = lambda m, t: tiny_configs(m, t, epochs=1000)
    _start(window, qtbot)
    qtbot.waitUntil(lambda: window.training._dataset is not None, timeout=20000)
    dataset = window.training._dataset
    version = dataset.version
    window.session.set_active_class(1)
    mouse_stroke(window, [(400, 400), (450, 450)])  # the person keeps painting while training runs
    assert labels_of(window)[425, 425] == 2
    qtbot.waitUntil(lambda: dataset.version > version, timeout=5000)
    assert dataset.snapshot()[0][0][425, 425] == 2
    with qtbot.waitSignal(window.training.finished, timeout=10000):
        window.training.stop()
    window.session.discard_untitled()


def test_an_error_inside_training_is_reported(window, qtbot, sample_512):
    def broken_train(*args, **kwargs):
        raise RuntimeError("simulated failure inside the training loop")
        yield  # pragma: no cover

    window.training.trainer = broken_train
    window.open_image(sample_512)
    paint_two_classes(window)
    with qtbot.waitSignal(window.training.failed, timeout=20000) as blocker:
        window.training_panel.train_button.click()
    assert "simulated failure" in blocker.args[0]
    qtbot.waitUntil(lambda: not window.training.is_running(), timeout=5000)
    assert window.last_error[0] == "Training failed" and "simulated failure" in window.last_error[1]
    assert "simulated failure" in window.training_panel.error_label.text()
    assert not window.training_panel.is_running()
    mouse_stroke(window, [(480, 480)])  # the window is still usable, the labels are all there
    assert labels_of(window)[480, 480] == 2 and labels_of(window)[30, 100] == 1
    window.session.discard_untitled()


def test_training_without_labels_says_what_to_do(window, sample_512):
    window.open_image(sample_512)
    window.training_panel.train_button.click()
    assert not window.training.is_running()
    assert "paint" in window.last_error[1]


def test_event_loop_never_stalls_during_training(window, qtbot, sample_512):
    """The longest gap between ticks of a 10 ms timer while a (small but real) training runs."""
    window.open_image(sample_512)
    paint_two_classes(window)
    window.training.config_hook = lambda m, t: tiny_configs(
        m.replace(base_channels=8, depth=3), t, patch_size=64, batch_size=4, epochs=1000, preview_every=5,
        eval_every=20)
    ticks = []
    timer = QtCore.QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    _start(window, qtbot)
    with qtbot.waitSignal(window.training.preview_shown, timeout=30000):
        pass
    timer.start()
    qtbot.wait(4000)
    timer.stop()
    with qtbot.waitSignal(window.training.finished, timeout=10000):
        window.training.stop()
    gaps = np.diff(ticks)
    print(f"\nGUI event loop during training: {len(ticks)} ticks, longest gap {gaps.max() * 1000:.1f} ms, "
          f"median {np.median(gaps) * 1000:.1f} ms")
    # Only a blocked GUI thread (training or a forward pass on it: many seconds) fails this; the 100 ms
    # target is measured by bench/ (the stall benchmark), as a busy shared machine stretches gaps past it.
    assert gaps.max() < 2.0
    window.session.discard_untitled()


def test_continue_from_the_current_model(window, qtbot, sample_512):
    import json

    window.open_image(sample_512)
    paint_two_classes(window)
    window.training.config_hook = lambda m, t: tiny_configs(m, t, epochs=1, steps_per_epoch=6, eval_every=3)
    _start(window, qtbot)
    with qtbot.waitSignal(window.training.finished, timeout=60000):
        pass
    meta = json.loads((window.session.model_dir / "model.json").read_text())
    assert meta["extra"]["steps"] == 6
    assert window.training_panel.continue_available()
    _start(window, qtbot, continue_training=True)
    with qtbot.waitSignal(window.training.finished, timeout=60000):
        pass
    meta = json.loads((window.session.model_dir / "model.json").read_text())
    assert meta["extra"]["steps"] == 12 and meta["extra"]["resumed_from"]
    window.session.discard_untitled()


def test_the_thresholds_chosen_on_validation_are_shown_after_training(window, qtbot, sample_512, tmp_path):
    import functools

    import tifffile

    from unet_studio.core.train import train

    # The calibrator and the pixel count it needs are passed in: the model chooses [0, 0.3].
    window.training.trainer = functools.partial(train, calibrator=lambda probs, truth: [0.0, 0.3])
    window.open_image(sample_512)
    nuclei = tifffile.imread(sample_512)
    full = tmp_path / "full_mask.tif"
    tifffile.imwrite(full, np.where(nuclei > nuclei.mean(), 2, 1).astype(np.uint8))  # every pixel labelled
    window.actions.import_labels(full)
    assert (labels_of(window) > 0).all()
    window.training.config_hook = lambda m, t: tiny_configs(m, t, epochs=1, steps_per_epoch=6,
                                                            calibration_min_pixels=1000)
    _start(window, qtbot)
    with qtbot.waitSignal(window.training.finished, timeout=60000):
        pass
    assert window.view_state.thresholds == (0.7, 0.3)
    assert window.overlay_panel.threshold_slider.value() == 30  # the panel shows the foreground's
    assert "set to 0.30" in window.statusBar().currentMessage()
    window.session.discard_untitled()


def test_calibrated_overlay_thresholds():
    from unet_studio.core.predict.postprocess import calibrated_overlay_thresholds

    assert calibrated_overlay_thresholds([0.42, 0.0], 2) == [0.42, 0.58]
    assert calibrated_overlay_thresholds([0.0, 0.3], 2) == [0.7, 0.3]
    assert calibrated_overlay_thresholds([], 2) is None
    assert calibrated_overlay_thresholds([0.4, 0.0], 3) is None
